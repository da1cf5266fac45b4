package testutil

import (
	"bytes"
	"context"
	"os/exec"
	"testing"
	"time"
)

// Interop with NNG's own command-line tool, nngcat (apt package
// nng-utils), as a real process over TCP. nngcat 1.5.2 with --count but no
// --interval computes a negative receive timeout once its send took a
// millisecond and exits with "Cannot set recv timeout": pass --interval.

// NNGCat returns nngcat's path, or skips the test with a clear message
// when it is not installed.
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
	Stdout, Stderr string
	Err            error
}

// StartNNGCat runs nngcat (path from NNGCat) with args in the background
// for at most limit; the channel yields its outcome once it exits. The
// process is killed and waited for at the end of the test at the latest,
// and dies with the test process (see [ChildAttr]).
func StartNNGCat(t testing.TB, path string, limit time.Duration, args ...string) <-chan NNGCatRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	c := exec.CommandContext(ctx, path, args...)
	c.SysProcAttr = ChildAttr()
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
		done <- NNGCatRun{out.String(), errOut.String(), err}
	}()
	t.Cleanup(func() {
		cancel()
		<-waited
	})
	return done
}
