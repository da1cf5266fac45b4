package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/spmesh/spmesh/internal/testutil"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"go.uber.org/goleak"
)

// bin is the spmesh binary built once by TestMain; the tests run it as real
// processes against meshes they start.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "spmesh-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "spmesh")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building spmesh:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, append(testutil.LeakOptions(), goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))...)
}

// result is a finished command.
type result struct {
	args   []string
	stdout string
	stderr string
	code   int
}

func (r result) String() string {
	return fmt.Sprintf("spmesh %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// runCLI runs spmesh with args (and stdin when not empty) to the end, with a
// deadline.
func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runEnv(t, nil, stdin, args...)
}

// runEnv is runCLI with extra environment variables (NAME=value).
func runEnv(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, bin, args...)
	c.Env = append(cleanEnv(), env...)
	c.SysProcAttr = testutil.ChildAttr()
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	err := c.Run()
	r := result{args: args, stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		r.code = ee.ExitCode()
	default:
		t.Fatalf("spmesh %s: %v (ctx: %v)\n%s", strings.Join(args, " "), err, ctx.Err(), r)
	}
	return r
}

// mustRun runs spmesh and fails the test unless it exits with want.
func mustRun(t *testing.T, want int, stdin string, args ...string) result {
	t.Helper()
	r := runCLI(t, stdin, args...)
	if r.code != want {
		t.Fatalf("got exit %d, want %d\n%s", r.code, want, r)
	}
	return r
}

// cleanEnv is the environment without SPMESH_ variables of the caller, and
// without the race detector's default 1 s sleep at exit (a race still makes
// the process exit with 66, and is reported on its stderr).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SPMESH_") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	return append(env, "GORACE=atexit_sleep_ms=10")
}

// proc is a long-running spmesh process whose output the test reads line by
// line as it comes.
type proc struct {
	t      *testing.T
	args   []string
	cmd    *exec.Cmd
	stdout *lines
	stderr *lines
	exited chan struct{}
	code   int
}

// lines collects a stream's lines and wakes waiters on each.
type lines struct {
	mu     sync.Mutex
	all    []string
	closed bool
	notify chan struct{}
}

func newLines() *lines { return &lines{notify: make(chan struct{})} }

func (l *lines) read(r io.Reader, wg *sync.WaitGroup) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l.mu.Lock()
		l.all = append(l.all, sc.Text())
		close(l.notify)
		l.notify = make(chan struct{})
		l.mu.Unlock()
	}
	l.mu.Lock()
	l.closed = true
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
}

func (l *lines) snapshot() ([]string, bool, chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.all...), l.closed, l.notify
}

func (l *lines) String() string {
	all, _, _ := l.snapshot()
	return strings.Join(all, "\n")
}

// start starts spmesh with args; the process gets SIGINT at the end of the
// test (and is killed if it does not exit in time).
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	c := exec.Command(bin, args...)
	c.Env = cleanEnv()
	c.SysProcAttr = testutil.ChildAttr()
	outR, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, err := c.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, args: args, cmd: c, stdout: newLines(), stderr: newLines(), exited: make(chan struct{})}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go p.stdout.read(outR, &wg)
	go p.stderr.read(errR, &wg)
	go func() {
		wg.Wait() // all output read before Wait closes the pipes
		err := c.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
		}
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.signal(syscall.SIGINT)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			c.Process.Kill()
			<-p.exited
			t.Errorf("spmesh %s did not exit within 10s of SIGINT", strings.Join(args, " "))
		}
		if strings.Contains(p.stderr.String(), "DATA RACE") {
			t.Errorf("got a data race\n%s", p)
		}
	})
	return p
}

func (p *proc) signal(sig os.Signal) {
	select {
	case <-p.exited:
	default:
		p.cmd.Process.Signal(sig)
	}
}

func (p *proc) String() string {
	return fmt.Sprintf("spmesh %s\nstdout:\n%s\nstderr:\n%s", strings.Join(p.args, " "), p.stdout, p.stderr)
}

// waitLine waits until a line of the stream matches the regular expression,
// and returns it (with its submatches).
func (p *proc) waitLine(l *lines, expr string, timeout time.Duration) []string {
	p.t.Helper()
	re := regexp.MustCompile(expr)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		all, closed, notify := l.snapshot()
		for _, line := range all {
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		}
		if closed {
			p.t.Fatalf("got no line matching %q before the stream closed\n%s", expr, p)
		}
		select {
		case <-notify:
		case <-deadline.C:
			p.t.Fatalf("got no line matching %q within %v\n%s", expr, timeout, p)
		}
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.code
	case <-time.After(timeout):
		p.t.Fatalf("still running after %v\n%s", timeout, p)
	}
	return 0
}

// seed starts a mesh node in the test process (a local, loopback node) and
// returns it with its gossip address; it leaves at the end of the test.
func seed(t *testing.T, eps ...spmesh.Endpoint) (*discovery.Node, string) {
	t.Helper()
	cfg := discovery.LocalConfig()
	cfg.Name = "seed-" + strings.ReplaceAll(t.Name(), "/", "-")
	n, err := discovery.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Leave(ctx)
	})
	for _, ep := range eps {
		if _, err := n.Advertise(ep); err != nil {
			t.Fatal(err)
		}
	}
	return n, n.Addr()
}

const waitReady = 20 * time.Second
