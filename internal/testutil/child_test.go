package testutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

func TestChildLines(t *testing.T) {
	c := StartLines(t, SelfCommand(childModeEnv+"=echo"), nil)
	if got := c.Next(t); got != "READY" {
		t.Fatalf("first line: got %q, want READY", got)
	}
	if _, err := io.WriteString(c.Stdin(), "hello\n"); err != nil {
		t.Fatal(err)
	}
	if got := c.Next(t); got != "hello" {
		t.Fatalf("echo: got %q, want hello", got)
	}
	if _, err := c.Line(10 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Line with nothing written: got %v, want a deadline error", err)
	}
	c.Kill()
	c.Kill() // idempotent
	if _, err := c.Line(time.Second); err != io.EOF {
		t.Fatalf("Line after Kill: got %v, want io.EOF", err)
	}
	if err := c.Err(); err == nil {
		t.Fatal("Err after Kill: got nil, want the kill")
	}
}

// Every line reaches the line func before Done.
func TestChildOnLine(t *testing.T) {
	n := 0
	c := StartLines(t, SelfCommand(childModeEnv+"=count"), func(string) { n++ })
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("child still running after 30 s")
	}
	if err := c.Err(); err != nil || n != 1000 {
		t.Fatalf("got %d lines, exit %v; want 1000, exit 0", n, err)
	}
}

func TestChildExitStatus(t *testing.T) {
	var out Buffer
	cmd := SelfCommand(childModeEnv + "=fail")
	cmd.Stdout = &out
	c := Start(t, cmd)
	var ee *exec.ExitError
	if err := c.Err(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("exit: got %v, want status 3", err)
	}
	if got := out.String(); got != "out\n" {
		t.Fatalf("output: got %q, want %q", got, "out\n")
	}
}

// A child's own child dies with it (the parent death signal), so a test
// binary killed hard leaves nothing behind.
func TestChildDiesWithParent(t *testing.T) {
	parent := StartLines(t, SelfCommand(childModeEnv+"=parent"), nil)
	pid, err := strconv.Atoi(parent.Next(t))
	if err != nil {
		t.Fatal(err)
	}
	if !Alive(pid) {
		t.Fatalf("grandchild %d: got dead, want running", pid)
	}
	parent.Kill()
	Eventually(t, 10*time.Second, func() error {
		if Alive(pid) {
			return fmt.Errorf("grandchild %d still runs after its parent was killed", pid)
		}
		return nil
	})
}

func TestAlive(t *testing.T) {
	if !Alive(os.Getpid()) {
		t.Fatal("Alive(self): got false, want true")
	}
	if Alive(1 << 30) {
		t.Fatal("Alive(no such pid): got true, want false")
	}
}
