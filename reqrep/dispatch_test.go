package reqrep_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/reqrep"
)

// counting answers every request and counts them.
func counting(n *atomic.Int64) reqrep.Handler {
	return reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		n.Add(1)
		return "ok", nil
	})
}

// Sequential calls over idle repliers spread evenly (round robin on ties),
// instead of going to the replier that answered last.
func TestSequentialCallsSpreadEvenly(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		rq := mustRequester(t)
		var counts [3]atomic.Int64
		for i := range counts {
			rp := mustReplier(t, counting(&counts[i]), reqrep.WithConcurrency(4), reqrep.WithCredit(5))
			la := "tcp://127.0.0.1:0"
			if strings.HasPrefix(addr, "inproc://") {
				la = fmt.Sprintf("%s-%d", addr, i)
			}
			a, err := rp.Listen(la)
			if err != nil {
				t.Fatal(err)
			}
			if err := rq.Dial(a); err != nil {
				t.Fatal(err)
			}
		}
		peers(t, rq, 3)
		const total = 300
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for i := range total {
			if err := rq.Request(ctx, i, nil); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		for i := range counts {
			share := float64(counts[i].Load()) / total
			if share < 1.0/3-0.1 || share > 1.0/3+0.1 {
				t.Errorf("replier %d took %.1f%% of the calls, want 33.3%% +- 10", i, 100*share)
			}
		}
		st := rq.Stats()
		if len(st.PerPeer) != 3 {
			t.Fatalf("got %d peers in PerPeer, want 3", len(st.PerPeer))
		}
		for _, p := range st.PerPeer {
			if p.Credit != 5 || p.InFlight != 0 || p.Done == 0 {
				t.Errorf("peer %+v: want credit 5 (announced), nothing in flight, some done", p)
			}
		}
	})
}

// A caller's retry of a failed call (same ID, next attempt) goes to
// another replier, not back to the one that failed it.
func TestRetryAfterRemoteErrorGoesElsewhere(t *testing.T) {
	addr := "tcp://127.0.0.1:0"
	rq := mustRequester(t)
	var failed, served atomic.Int64
	bad := mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		failed.Add(1)
		return nil, errors.New("no")
	}))
	good := mustReplier(t, counting(&served))
	for _, rp := range []*reqrep.Replier{bad, good} {
		a, err := rp.Listen(addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := rq.Dial(a); err != nil {
			t.Fatal(err)
		}
	}
	peers(t, rq, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const calls = 50
	for i := range calls {
		c := &reqrep.Call{ID: reqrep.ID{byte(i + 1)}, Body: i}
		for {
			rep, err := rq.Do(ctx, c)
			var re *spmesh.RemoteError
			if errors.As(err, &re) {
				c.Attempt = rep.Attempt + 1
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if got := served.Load(); got != calls {
		t.Fatalf("good replier served %d calls, want %d", got, calls)
	}
	// Each call fails at most once: its retry avoids the failing replier.
	if got := failed.Load(); got > calls {
		t.Fatalf("bad replier got %d calls, want at most %d (one per call)", got, calls)
	}
}
