package reqrep_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/reqrep"
	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/rep"
	"go.nanomsg.org/mangos/v3/protocol/req"
)

// A bare Replier serves a stock SP REQ peer (mangos standing in for NNG's
// nngcat --req): the request body reaches the handler as is, the reply
// body is exactly the handler's bytes; a failed handler sends no reply
// (counted), and the next request is served.
func TestBareReplierStockReq(t *testing.T) {
	addr := testutil.FreeTCP(t)
	r := mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, q *reqrep.Request) (any, error) {
		if string(q.Data) == "fail" {
			return nil, errors.New("refused")
		}
		return bytes.ToUpper(q.Data), nil
	}), reqrep.WithListen(addr), reqrep.WithCodec(spmesh.Raw), reqrep.WithBareFrames())
	raw, err := req.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.SetOption(mangos.OptionRecvDeadline, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := raw.Dial(addr); err != nil {
		t.Fatal(err)
	}
	call := func(body string) string {
		t.Helper()
		if err := raw.Send([]byte(body)); err != nil {
			t.Fatal(err)
		}
		got, err := raw.Recv()
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		return string(got)
	}
	if got := call("hello"); got != "HELLO" {
		t.Fatalf("got reply %q, want %q", got, "HELLO")
	}
	if err := raw.Send([]byte("fail")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := r.Stats().HandlerErrors; n != 1 {
			return fmt.Errorf("got %d handler errors, want 1", n)
		}
		return nil
	})
	// The stock REQ abandons the unanswered request when it sends the next.
	if got := call("again"); got != "AGAIN" {
		t.Fatalf("got reply %q, want %q", got, "AGAIN")
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if st := r.Stats(); st.Sent != 2 || st.DecodeErrors != 0 {
			return fmt.Errorf("got %d sent, %d decode errors, want 2 and 0", st.Sent, st.DecodeErrors)
		}
		return nil
	})
}

// A bare Requester calls a stock SP REP peer (standing in for nngcat
// --rep): the REP gets exactly the request bytes, and its bytes are the
// reply. Headers, which bare frames cannot carry, fail the call.
func TestBareRequesterStockRep(t *testing.T) {
	addr := testutil.FreeTCP(t)
	raw, err := rep.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.Listen(addr); err != nil {
		t.Fatal(err)
	}
	rq := mustRequester(t, reqrep.WithDial(addr), reqrep.WithCodec(spmesh.Raw), reqrep.WithBareFrames(), reqrep.WithWaitForReplier())
	ctx := ctxT(t, 20*time.Second)
	done := make(chan error, 1)
	var reply []byte
	go func() { done <- rq.Request(ctx, []byte("ping"), &reply) }()
	got, err := raw.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "ping" {
		t.Fatalf("stock REP got %q, want %q", got, "ping")
	}
	if err := raw.Send([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if string(reply) != "pong" {
		t.Fatalf("got reply %q, want %q", reply, "pong")
	}
	_, err = rq.Do(ctx, &reqrep.Call{Body: []byte("x"), Header: spmesh.Header{"k": "v"}})
	if err == nil || !strings.Contains(err.Error(), "bare") {
		t.Fatalf("call with headers: got %v, want an error naming bare frames", err)
	}
}

// Bare on both ends works with any codec (msgpack here).
func TestBareBothEnds(t *testing.T) {
	addr := testutil.Inproc(t)
	mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, q *reqrep.Request) (any, error) {
		var n int
		if err := q.Decode(&n); err != nil {
			return nil, err
		}
		return n * 2, nil
	}), reqrep.WithListen(addr), reqrep.WithBareFrames())
	rq := mustRequester(t, reqrep.WithDial(addr), reqrep.WithBareFrames(), reqrep.WithWaitForReplier())
	got, err := reqrep.Ask[int](ctxT(t, 20*time.Second), rq, 21)
	if err != nil || got != 42 {
		t.Fatalf("got %d, %v, want 42", got, err)
	}
}

// A bare request carries no headers: RequestHeader with some fails with
// ErrInvalidOption naming bare frames, and nothing is sent.
func TestBareHeadersRefused(t *testing.T) {
	rq := mustRequester(t, reqrep.WithListen(testutil.Inproc(t)), reqrep.WithBareFrames())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := rq.RequestHeader(ctx, spmesh.Header{"k": "v"}, "x", nil)
	if !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), "bare") {
		t.Fatalf("RequestHeader with headers: got %v, want ErrInvalidOption naming bare frames", err)
	}
	if st := rq.Stats(); st.Sent != 0 {
		t.Fatalf("got %d sent, want 0", st.Sent)
	}
}
