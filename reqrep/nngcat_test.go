package reqrep_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/reqrep"
)

// Interop with NNG's own command-line tool (apt package nng-utils). These
// tests skip when nngcat is not installed. The --req runs pass --interval:
// nngcat 1.5.2 with a count but no interval computes a negative receive
// timeout once its send took a millisecond and exits with "Cannot set recv
// timeout".

func nngcat(t *testing.T) string {
	t.Helper()
	return testutil.NNGCat(t)
}

func runNNGCat(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := execNNGCat(nngcat(t), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// execNNGCat runs nngcat for at most 20s and returns its standard output.
func execNNGCat(path string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("nngcat %v: %v: %s", args, err, stderr.Bytes())
	}
	return out, nil
}

// nngcat --req calls a bare Replier.
func TestNNGCatReqToBareReplier(t *testing.T) {
	nngcat(t)
	addr := testutil.FreeTCP(t)
	mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, q *reqrep.Request) (any, error) {
		return bytes.ToUpper(q.Data), nil
	}), reqrep.WithListen(addr), reqrep.WithCodec(spmesh.Raw), reqrep.WithBareFrames())
	out := runNNGCat(t, "--req", "--dial", addr, "--raw", "--data", "hello", "--count", "1", "--interval", "10")
	if string(out) != "HELLO" {
		t.Fatalf("nngcat got %q, want %q", out, "HELLO")
	}
}

// A bare Requester calls nngcat --rep.
func TestBareRequesterToNNGCatRep(t *testing.T) {
	path := nngcat(t)
	addr := testutil.FreeTCP(t)
	rq := mustRequester(t, reqrep.WithDial(addr), reqrep.WithCodec(spmesh.Raw), reqrep.WithBareFrames(), reqrep.WithWaitForReplier())
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := execNNGCat(path, "--rep", "--listen", addr, "--raw", "--data", "pong", "--count", "1")
		done <- result{out, err}
	}()
	var reply []byte
	if err := rq.Request(ctxT(t, 20*time.Second), []byte("ping"), &reply); err != nil {
		t.Fatal(err)
	}
	if string(reply) != "pong" {
		t.Fatalf("got reply %q, want %q", reply, "pong")
	}
	if r := <-done; r.err != nil || string(r.out) != "ping" {
		t.Fatalf("nngcat got %q, %v, want %q", r.out, r.err, "ping")
	}
}

// A foreign peer that speaks the envelope from WIRE.md (the example
// request's bytes, sent by nngcat from a file) calls an ordinary Replier
// and gets a reply envelope that echoes its id.
func TestNNGCatEnvelopeToReplier(t *testing.T) {
	nngcat(t)
	addr := testutil.FreeTCP(t)
	mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, q *reqrep.Request) (any, error) {
		return bytes.ToUpper(q.Data), nil
	}), reqrep.WithListen(addr), reqrep.WithCodec(spmesh.Raw))
	id := wire.ID{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	// WIRE.md's request without the deadline (which has passed): version,
	// kind 2, {1: id, 6: 1}, body "hi".
	req := append([]byte{0x01, 0x02, 0x82, 0x01, 0xc4, 0x10}, id[:]...)
	req = append(req, 0x06, 0x01, 'h', 'i')
	f := filepath.Join(t.TempDir(), "req")
	if err := os.WriteFile(f, req, 0o600); err != nil {
		t.Fatal(err)
	}
	out := runNNGCat(t, "--req", "--dial", addr, "--raw", "--file", f, "--count", "1", "--interval", "10")
	var env wire.Msg
	if err := wire.Decode(out, &env); err != nil {
		t.Fatalf("reply % x: %v", out, err)
	}
	if env.Kind != wire.KindReply || env.ID != id || env.Err != "" || string(env.Body) != "HI" {
		t.Fatalf("got kind %d id %x err %q body %q, want kind 3, the request's id, no error, %q", env.Kind, env.ID, env.Err, env.Body, "HI")
	}
}
