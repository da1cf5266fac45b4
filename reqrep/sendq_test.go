package reqrep_test

import (
	"context"
	"errors"
	"os"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/hostile"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/reqrep"
)

// TestReplierReleasesClosedPeer: once a Replier has closed the connection
// of a peer that never reads its (256 KiB) replies, the replies that were
// queued for it are released: the heap goes back to what it was, while
// the Replier is still open and serving.
//
// SPMESH_HEAPPROFILE=file writes the heap profile taken at the end.
func TestReplierReleasesClosedPeer(t *testing.T) {
	rp, err := reqrep.NewReplier(reqrep.HandlerFunc(hostileHandler), reqrep.WithListen("tcp://127.0.0.1:0"),
		reqrep.WithSendTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	addr := rp.Addrs()[0]
	rq, err := reqrep.NewRequester(reqrep.WithDial(addr), reqrep.WithWaitForReplier(), reqrep.WithAttemptTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer rq.Close()
	legit := func(n int) {
		t.Helper()
		for range n {
			ctx, cancel := context.WithTimeout(context.Background(), hostile.LegitTimeout)
			var got string
			err := rq.Request(ctx, "hi", &got)
			cancel()
			if err != nil || got != "ok" {
				t.Fatalf("legit request: %q, %v", got, err)
			}
		}
	}
	legit(50)
	before := hostile.ReadMem()

	c, err := hostile.Dial(addr, hostile.ProtoReq)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Reset()
	big := hostile.Envelope(wire.KindRequest, "", must(spmesh.Msgpack.Marshal("big")))
	var sent int
	for i := uint32(1); i <= 1500; i++ {
		if err := c.Frame(hostile.ReqID(i), big); err != nil {
			break // closed by the replier
		}
		sent++
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if rp.Stats().SendTimeouts == 0 {
			return errors.New("no send timeout counted")
		}
		return nil
	})
	legit(50)
	var g hostile.Growth
	// The closed pipe's goroutines end asynchronously: wait for the heap.
	err = testutil.Until(10*time.Second, func() error {
		g = before.Since()
		if g.Held > 16<<20 {
			return errors.New(g.String())
		}
		return nil
	})
	if f := os.Getenv("SPMESH_HEAPPROFILE"); f != "" {
		if w, err := os.Create(f); err == nil {
			_ = pprof.Lookup("heap").WriteTo(w, 0)
			w.Close()
		}
	}
	t.Logf("sent %d requests for 256 KiB replies; after the close: %v; replier %+v", sent, g, rp.Stats().Stats)
	if err != nil {
		t.Errorf("heap held after the replier closed the peer: %v, want at most +16 MiB", err)
	}
}
