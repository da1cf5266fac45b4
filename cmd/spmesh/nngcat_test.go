package main

import (
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
)

// Interop of the CLI's --bare with NNG's own command-line tool (apt package
// nng-utils), as real processes over TCP. These tests skip when nngcat is
// not installed. nngcat --req runs get --interval: nngcat 1.5.2 with a count
// but no interval computes a negative receive timeout once its send took a
// millisecond and exits with "Cannot set recv timeout".

func nngcatPath(t *testing.T) string {
	t.Helper()
	return testutil.NNGCat(t)
}

// startNNGCat runs nngcat in the background for at most 30s; the returned
// channel yields its outcome. The process is killed and waited for at the
// end of the test.
func startNNGCat(t *testing.T, path string, args ...string) <-chan testutil.NNGCatRun {
	t.Helper()
	return testutil.StartNNGCat(t, path, 30*time.Second, args...)
}

// spmesh req --bare calls nngcat --rep: the request arrives as its bytes,
// the reply is printed as it came.
func TestBareReqToNNGCatRep(t *testing.T) {
	t.Parallel()
	path := nngcatPath(t)
	addr := testutil.FreeTCP(t)
	done := startNNGCat(t, path, "--rep", "--listen", addr, "--raw", "--data", "pong", "--count", "1")
	r := mustRun(t, 0, "", "req", "--dial", addr, "--bare", "--timeout", "20s", "ping")
	if r.stdout != "pong\n" {
		t.Fatalf("got reply %q, want %q\n%s", r.stdout, "pong\n", r)
	}
	select {
	case n := <-done:
		if n.Err != nil || n.Stdout != "ping" {
			t.Fatalf("nngcat --rep got %q (%v, stderr %q), want %q", n.Stdout, n.Err, n.Stderr, "ping")
		}
	case <-time.After(waitReady):
		t.Fatalf("nngcat --rep still running %v after answering", waitReady)
	}

	// --json prints the body alone: a bare reply has no id or attempt.
	done = startNNGCat(t, path, "--rep", "--listen", addr, "--raw", "--data", "pong", "--count", "1")
	r = mustRun(t, 0, "", "req", "--dial", addr, "--bare", "--timeout", "20s", "--json", "ping")
	if strings.Contains(r.stdout, `"id"`) || !strings.Contains(r.stdout, "pong") {
		t.Fatalf("got %q, want the body pong and no id\n%s", r.stdout, r)
	}
	<-done
}

// nngcat --req calls spmesh reply --bare, echoing and with a --command.
func TestNNGCatReqToBareReply(t *testing.T) {
	t.Parallel()
	path := nngcatPath(t)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"echo", nil, "hello mesh"},
		{"command", []string{"--command", "tr a-z A-Z"}, "HELLO MESH"},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := testutil.FreeTCP(t)
			reply := start(t, append([]string{"reply", "--listen", addr, "--bare", "-v", "--count", "1"}, c.args...)...)
			reply.waitLine(reply.stderr, `serving requests at tcp://127\.0\.0\.1:\d+`, waitReady)
			var n testutil.NNGCatRun
			select {
			case n = <-startNNGCat(t, path, "--req", "--dial", addr, "--raw", "--data", "hello mesh", "--count", "1", "--interval", "10"):
			case <-time.After(waitReady):
				t.Fatalf("nngcat --req got no reply within %v\n%s", waitReady, reply)
			}
			if n.Err != nil || n.Stdout != c.want {
				t.Fatalf("nngcat --req got %q (%v, stderr %q), want %q\n%s", n.Stdout, n.Err, n.Stderr, c.want, reply)
			}
			reply.waitLine(reply.stdout, `^request "?hello mesh"?$`, waitReady)
			if code := reply.wait(waitReady); code != 0 {
				t.Fatalf("got reply exit %d, want 0 after --count 1\n%s", code, reply)
			}
		})
	}
}

// --bare is refused where it cannot hold: on the commands whose pattern
// needs the envelope, with a codec, and with headers.
func TestBareRefused(t *testing.T) {
	t.Parallel()
	addr := "tcp://127.0.0.1:1"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"survey", "--dial", addr, "--bare", "--expect", "a", "x"}, "bare answers carry no respondent name"},
		{[]string{"pub", "--dial", addr, "--bare", "-H", "a=b", "t", "x"}, "bare frames carry no headers"},
		{[]string{"push", "--dial", addr, "--bare", "-H", "a=b", "x"}, "bare frames carry no headers"},
		{[]string{"pull", "--dial", addr, "--bare", "--codec", "msgpack"}, "a bare body is the raw bytes, no codec"},
		{[]string{"produce", "--dial", addr, "--bare", "x"}, "produce cannot send bare frames"},
		{[]string{"req", "--dial", addr, "--bare", "--codec", "msgpack", "x"}, "a bare body is the raw bytes, no codec"},
		{[]string{"req", "--dial", addr, "--bare", "-H", "a=b", "x"}, "bare frames carry no headers"},
	} {
		r := runCLI(t, "", c.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("got exit %d, want %d with %q\n%s", r.code, exitUsage, c.want, r)
		}
	}
}
