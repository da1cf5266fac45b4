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

// heldReplier serves until release closes: each handler tells entered
// (when it has room), then waits for release or its ctx.
func heldReplier(t *testing.T) (addr string, entered chan struct{}, release chan struct{}) {
	t.Helper()
	addr = testutil.FreeTCP(t)
	entered, release = make(chan struct{}, 1), make(chan struct{})
	mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-release:
			return "done", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}), reqrep.WithListen(addr))
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	return addr, entered, release
}

// startCall starts a request on rq and waits until its handler runs.
func startCall(t *testing.T, rq *reqrep.Requester, entered chan struct{}) chan error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if err := rq.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		var s string
		err := rq.Request(ctx, "q", &s)
		if err == nil && s != "done" {
			err = fmt.Errorf("reply %q, want done", s)
		}
		res <- err
	}()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the handler never ran")
	}
	return res
}

func TestRequesterDrainLetsCallsFinish(t *testing.T) {
	addr, entered, release := heldReplier(t)
	rq := mustRequester(t, reqrep.WithDial(addr))
	call := startCall(t, rq, entered)

	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		drained <- rq.Drain(ctx)
	}()
	// New calls are refused while the one in flight goes on.
	testutil.Eventually(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := rq.Request(ctx, "late", nil); !errors.Is(err, spmesh.ErrClosed) {
			return fmt.Errorf("Request during Drain = %v, want ErrClosed", err)
		}
		return nil
	})
	select {
	case err := <-drained:
		t.Fatalf("Drain returned %v with a call in flight", err)
	default:
	}
	if n := rq.Stats().InFlight; n != 1 {
		t.Fatalf("InFlight = %d during Drain, want 1", n)
	}
	close(release)
	if err := <-call; err != nil {
		t.Fatalf("call in flight = %v, want its reply", err)
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain = %v, want nil", err)
	}
	if err := rq.Request(context.Background(), "after", nil); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Request after Drain = %v, want ErrClosed", err)
	}
	if err := rq.Drain(context.Background()); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("second Drain = %v, want ErrClosed", err)
	}
}

func TestRequesterDrainExpires(t *testing.T) {
	addr, entered, _ := heldReplier(t)
	rq := mustRequester(t, reqrep.WithDial(addr))
	call := startCall(t, rq, entered)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := rq.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain = %v, want DeadlineExceeded", err)
	}
	// Closed anyway: the call in flight ends.
	if err := <-call; !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("call in flight after expired Drain = %v, want ErrClosed", err)
	}
	if err := rq.Close(); err != nil {
		t.Fatalf("Close after Drain = %v", err)
	}
}

func TestRequesterAddrs(t *testing.T) {
	addr := testutil.FreeTCP(t)
	rq := mustRequester(t, reqrep.WithListen(addr))
	if got := rq.Addrs(); len(got) != 1 || got[0] != addr {
		t.Fatalf("Addrs = %v, want [%s]", got, addr)
	}
}
