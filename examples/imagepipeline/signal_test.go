//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
)

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running is a demo process started by a test.
type running struct {
	cmd     *exec.Cmd
	out     *syncBuffer
	done    chan struct{}
	err     error
	summary string
}

// startDemo starts the demo with a long run (so that the test can stop it
// midway) and waits until every role has started and images flow.
func startDemo(t *testing.T, args ...string) *running {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := &running{out: &syncBuffer{}, done: make(chan struct{}), summary: filepath.Join(dir, "summary.json")}
	args = append([]string{"-n", "500", "-size", "320", "-thumb", "80", "-work", "200ms",
		"-out", filepath.Join(dir, "out"), "-summary", r.summary}, args...)
	r.cmd = exec.Command(exe, args...)
	r.cmd.Env = append(os.Environ(), envMain+"=1")
	r.cmd.SysProcAttr = childAttr()
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		<-r.done
	})
	testutil.Eventually(t, 60*time.Second, func() error {
		if out := r.out.String(); !regexp.MustCompile(`\] +[1-9][0-9]*/500 `).MatchString(out) {
			return fmt.Errorf("progress: got output\n%s\nwant images stored", out)
		}
		return nil
	})
	return r
}

// pids returns the children's process ids, from the "started" lines.
func (r *running) pids(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range regexp.MustCompile(`started (\S+) +pid (\d+)`).FindAllStringSubmatch(r.out.String(), -1) {
		pid, _ := strconv.Atoi(m[2])
		out[m[1]] = pid
	}
	if len(out) != 5 {
		t.Fatalf("children: got %v, want a sink, a producer and 3 workers", out)
	}
	return out
}

// alive reports whether pid runs (a zombie waiting to be reaped counts as
// dead).
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// TestInterrupt stops the demo with SIGINT (Ctrl-C) midway: the supervisor
// stops the children in order, each finishing its work and leaving the mesh,
// prints the summary of what was done, and exits with status 1.
func TestInterrupt(t *testing.T) {
	r := startDemo(t, "-v")
	pids := r.pids(t)
	if err := r.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("still running 60 s after SIGINT; output:\n%s", r.out.String())
	}
	var ee *exec.ExitError
	if !errors.As(r.err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: got %v, want exit status 1; output:\n%s", r.err, r.out.String())
	}
	out := r.out.String()
	for _, want := range []string{"stopping: producer, workers, then sink", "imagepipeline interrupted",
		"[worker-1] ", "[worker-2] ", "[worker-3] "} {
		if !strings.Contains(out, want) {
			t.Errorf("output: got\n%s\nwant it to contain %q", out, want)
		}
	}
	// Each worker drained and said how many images it made.
	if got := strings.Count(out, `msg="worker done"`); got != 3 {
		t.Errorf("graceful worker exits: got %d, want 3; output:\n%s", got, out)
	}
	for name, pid := range pids {
		if alive(pid) {
			t.Errorf("%s (pid %d): still running after the supervisor exited", name, pid)
		}
	}
	data, err := os.ReadFile(r.summary)
	if err != nil {
		t.Fatal(err)
	}
	var sum Summary
	if err := json.Unmarshal(data, &sum); err != nil {
		t.Fatal(err)
	}
	if !sum.Interrupted || sum.Processed == 0 || sum.Processed >= sum.Total {
		t.Fatalf("summary: got interrupted %v, processed %d of %d, want interrupted, some but not all", sum.Interrupted, sum.Processed, sum.Total)
	}
}

// TestSupervisorKilled kills the supervisor hard: its children die with it
// (the parent death signal), none is left behind.
func TestSupervisorKilled(t *testing.T) {
	r := startDemo(t)
	pids := r.pids(t)
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-r.done
	testutil.Eventually(t, 20*time.Second, func() error {
		for name, pid := range pids {
			if alive(pid) {
				return fmt.Errorf("%s (pid %d): got running, want dead with its supervisor", name, pid)
			}
		}
		return nil
	})
}
