package testutil

import (
	"bytes"
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Interop with NNG's own command-line tool (apt package nng-utils): tests
// that run it skip when it is not installed. nngcat 1.5.2 with --count but
// no --interval computes a negative receive timeout on some sockets (--req)
// once its send took a millisecond and exits with "Cannot set recv
// timeout": pass --interval there.

// NNGCat returns the path of nngcat, or skips the test when it is not
// installed.
func NNGCat(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("nngcat")
	if err != nil {
		t.Skip("nngcat not installed (apt-get install nng-utils): NNG interop not tested")
	}
	return p
}

// NNGCatRun is a finished (or killed) nngcat process.
type NNGCatRun struct {
	Stdout, Stderr []byte
	Err            error
}

// StartNNGCat runs nngcat (skipping the test when it is not installed) in
// the background for at most 30s; the returned channel yields its outcome
// once. The process is killed and waited for at the end of the test.
func StartNNGCat(t testing.TB, args ...string) <-chan NNGCatRun {
	t.Helper()
	path := NNGCat(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	c := exec.CommandContext(ctx, path, args...)
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	if err := c.Start(); err != nil {
		cancel()
		t.Fatalf("nngcat %v: %v", args, err)
	}
	done := make(chan NNGCatRun, 1)
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		err := c.Wait()
		done <- NNGCatRun{out.Bytes(), errOut.Bytes(), err}
	}()
	t.Cleanup(func() {
		cancel()
		<-waited
	})
	return done
}
