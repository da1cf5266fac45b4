package reqrep_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/reqrep"
)

// A call whose only replier's connection drops is resent when a replier
// connects again, within its ctx, rather than failing with ErrNoPeers in
// the moment between the two connections (a replier hangs up on a
// requester whose replies back up, expecting the resend). With no replier
// coming back it fails with ErrNoPeers after the wait, and a call started
// with nobody connected still fails at once.
func TestResendWaitsForReconnect(t *testing.T) {
	first := mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		<-ctx.Done() // holds the first attempt until Close
		return nil, ctx.Err()
	}), reqrep.WithListen("tcp://127.0.0.1:0"))
	addr := first.Addrs()[0]
	rq := mustRequester(t, reqrep.WithDial(addr), reqrep.WithReconnect(10*time.Millisecond, 100*time.Millisecond))
	peers(t, rq, 1)

	done := make(chan error, 1)
	var got string
	go func() { done <- rq.Request(ctxT(t, 30*time.Second), "x", &got) }()
	testutil.Eventually(t, 20*time.Second, func() error { return want(first.Stats().InFlight, 1, "handlers running") })
	first.Close() // the attempt's connection drops
	testutil.Eventually(t, 20*time.Second, func() error { return want(rq.Stats().Lost, 1, "attempts lost") })
	second := mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		var body string
		if err := req.Decode(&body); err != nil {
			return nil, err
		}
		if body == "hold" {
			<-ctx.Done() // the third part's call: held until Close
			return nil, ctx.Err()
		}
		return "second", nil
	}), reqrep.WithListen(addr))
	if err := <-done; err != nil || got != "second" {
		t.Fatalf("call across the reconnect: got %q, %v, want \"second\", nil", got, err)
	}
	if st := rq.Stats(); st.Resent != 1 {
		t.Fatalf("got %d resent, want 1", st.Resent)
	}

	// Nobody comes back: ErrNoPeers once the wait is over.
	go func() { done <- rq.Request(ctxT(t, 30*time.Second), "hold", nil) }()
	testutil.Eventually(t, 20*time.Second, func() error { return want(second.Stats().InFlight, 1, "handlers running") })
	second.Close()
	if err := <-done; !errors.Is(err, spmesh.ErrNoPeers) {
		t.Fatalf("call whose replier went for good: got %v, want ErrNoPeers", err)
	}

	lone := mustRequester(t)
	if err := lone.Request(ctxT(t, 10*time.Second), "x", nil); !errors.Is(err, spmesh.ErrNoPeers) {
		t.Fatalf("call with nobody connected: got %v, want ErrNoPeers at once", err)
	}
}

func want[T comparable](got, want T, what string) error {
	if got != want {
		return fmt.Errorf("%s: got %v, want %v", what, got, want)
	}
	return nil
}
