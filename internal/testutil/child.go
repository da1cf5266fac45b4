package testutil

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// Self returns the path of the running test binary, to run it again as a
// child (see [SelfCommand]).
func Self() string {
	if exe, err := os.Executable(); err == nil {
		return exe
	}
	return os.Args[0]
}

// Command returns name with args as a child of the test process: the
// test's environment plus env ("KEY=value"), stderr to the test's, and on
// Linux SIGKILL when the test process dies (the parent death signal, see
// [ChildAttr]), so that no child outlives a test binary killed by its
// timeout. Start it with [Start] or [StartLines].
func Command(env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = ChildAttr()
	return cmd
}

// SelfCommand is [Command] running the test binary itself with no test
// selected (-test.run=^$): the child does what env tells its TestMain or
// an init function.
func SelfCommand(env ...string) *exec.Cmd {
	return Command(env, Self(), "-test.run=^$")
}

// Child is a child process of a test, reaped in the background and killed
// (SIGKILL) at the end of the test at the latest.
type Child struct {
	Cmd *exec.Cmd

	in     io.WriteCloser // StartLines only
	lines  chan string    // StartLines without a line func
	exited chan struct{}  // closed once stdout is read to the end and the child reaped
	err    error          // Cmd.Wait's result, set before exited closes
	kill   sync.Once
}

// Start starts cmd with its output going where cmd says.
func Start(t testing.TB, cmd *exec.Cmd) *Child {
	t.Helper()
	c := &Child{Cmd: cmd, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go c.reap(nil, nil)
	t.Cleanup(c.Kill)
	return c
}

// StartLines starts cmd with its stdin (see [Child.Stdin]) and stdout
// piped. Each line the child writes to stdout goes to onLine, called from
// one goroutine in order; with onLine nil the lines are read with
// [Child.Line] or [Child.Next] (64 are buffered: past them the child
// blocks writing, and Done waits, until they are read or Kill discards
// them). Lines of up to 1 MiB are read whole.
func StartLines(t testing.TB, cmd *exec.Cmd, onLine func(string)) *Child {
	t.Helper()
	c := &Child{Cmd: cmd, exited: make(chan struct{})}
	var err error
	if c.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if onLine == nil {
		c.lines = make(chan string, 64)
		onLine = func(s string) { c.lines <- s }
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go c.reap(stdout, onLine)
	t.Cleanup(c.Kill)
	return c
}

// reap reads stdout to the end (Wait closes it), then waits for the child.
func (c *Child) reap(stdout io.Reader, onLine func(string)) {
	if stdout != nil {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			onLine(sc.Text())
		}
		if c.lines != nil {
			close(c.lines)
		}
	}
	c.err = c.Cmd.Wait()
	close(c.exited)
}

// Stdin is the child's stdin (StartLines only); [Child.Kill] closes it.
func (c *Child) Stdin() io.Writer { return c.in }

// Line returns the child's next stdout line (StartLines without a line
// func): io.EOF once the child closed its stdout, an error when timeout
// passes first.
func (c *Child) Line(timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l, ok := <-c.lines:
		if !ok {
			return "", io.EOF
		}
		return l, nil
	case <-t.C:
		return "", fmt.Errorf("no line from the child within %v: %w", timeout, os.ErrDeadlineExceeded)
	}
}

// Next is [Child.Line] within 20 s, failing the test without a line.
func (c *Child) Next(t testing.TB) string {
	t.Helper()
	l, err := c.Line(20 * time.Second)
	if err == io.EOF {
		t.Fatal("child exited")
	}
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Done is closed once the child has exited, all of its stdout has been
// read (and handed to the line func) and it has been reaped.
func (c *Child) Done() <-chan struct{} { return c.exited }

// Err is the child's exit error (nil for status 0), once Done is closed.
func (c *Child) Err() error {
	<-c.exited
	return c.err
}

// Kill sends SIGKILL to the child, closes its stdin and waits until Done
// (every line it wrote before dying is handed over or, unread, discarded).
// It is idempotent and safe to call concurrently.
func (c *Child) Kill() {
	c.kill.Do(func() {
		c.Cmd.Process.Kill()
		if c.in != nil {
			c.in.Close()
		}
	})
	if c.lines != nil {
		for range c.lines {
		}
	}
	<-c.exited
}

// Alive reports whether process pid runs (a zombie, dead but not yet
// reaped, does not). Linux only: false elsewhere.
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// Buffer is a bytes.Buffer safe for a child's output written while the
// test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
