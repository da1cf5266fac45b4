// Package testutil holds what the spmesh test suites share: a retry-until
// helper, address helpers, hostile frames, a raw SP peer (RawSP, on the
// hostile-peer suite's client), the conformance suite every pattern
// package runs, the slow-reader Drain suite of the senders (SlowDrain),
// nngcat interop, and child processes (Command, SelfCommand, StartLines,
// Start): the test binary or another program run as a child that is
// killed at the end of the test and dies with the test process (Linux:
// the parent death signal), so that no test leaves a process behind.
//
// The conformance suite: each pattern package's TestConformance calls
// [Conform] with a [Pattern] per socket type (and per bare variant) and a
// [Pair] per pattern. Conform fails when a NewX constructor of the package
// has no Pattern or is no side of a Pair, then runs [Run] (lifecycle,
// ctx, options, hostile peers; for serving sides, Drain and Close with a
// handler running) and [RunPair] (every message exactly once, both sides'
// Stats agree, Peers back to 0 after a Close, Drain delivers what was
// sent) over inproc and TCP. [Types] lists the ten socket types.
package testutil

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// Eventually calls cond until it returns nil, failing the test with the last
// error when timeout passes first. It is the only way tests wait.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := Until(timeout, cond); err != nil {
		t.Fatalf("condition not met within %v: %v", timeout, err)
	}
}

// Until calls cond until it returns nil or timeout passes; it returns the
// last error then.
func Until(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	tick := time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(tick)
		if tick < 20*time.Millisecond {
			tick *= 2
		}
	}
}

var seq atomic.Int64

// Inproc returns a fresh inproc:// address.
func Inproc(t testing.TB) string {
	return fmt.Sprintf("inproc://%s-%d", t.Name(), seq.Add(1))
}

// FreeTCP returns a tcp:// address on 127.0.0.1 whose port was free a moment
// ago. Prefer listening on port 0 where the caller can read the bound address.
func FreeTCP(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "tcp://" + l.Addr().String()
}

// Garbage returns hostile frames: random bytes, truncated and malformed
// envelopes. Oversized frames are made by the caller from its size limit.
func Garbage() [][]byte {
	return [][]byte{
		{},
		{0},
		{1},
		{1, 1},
		{2, 1, 0x80},
		{1, 99, 0x80},
		{1, 2, 0xdf, 0xff, 0xff, 0xff, 0xff},
		[]byte("topic.without.terminator"),
		[]byte("t\x00\x01\x01\x81\x03\xdf\xff\xff\xff\xff"),
		[]byte("t\x00\x01\x01\x81\x09\xdb\x7f\xff\xff\xff"),
		[]byte("\xff\xfe\xfd\x00garbage"),
		{1, 2, 0x81, 99, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0},
	}
}

// Stdout returns what f writes to os.Stdout (examples' main functions).
func Stdout(t testing.TB, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	out := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		out <- string(b)
	}()
	defer func() { os.Stdout = stdout }()
	f()
	w.Close()
	return <-out
}
