package pipeline_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/pipeline"
)

// Jobs without an id (key 1 absent: 16 zero bytes), as a foreign producer
// built from WIRE.md may send, are never de-duplicated by a Worker with
// WithDedup: each one runs and is acked. A repeated non-zero id still is.
func TestDedupZeroIDNeverCollapsed(t *testing.T) {
	addr := testutil.FreeTCP(t)
	var ran atomic.Int64
	w := mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, job *pipeline.Job) error {
		ran.Add(1)
		return nil
	}), pipeline.WithListen(addr), pipeline.WithDedup(100, time.Hour))
	peer := testutil.DialSP(t, addr, testutil.ProtoReq)

	send := func(reqID uint32, id wire.ID) {
		t.Helper()
		job := wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindJob, ID: id, Attempt: 1})
		if err := peer.Send(append(job, "x"...), 0x80000000|reqID); err != nil {
			t.Fatal(err)
		}
		b, err := peer.Recv(10 * time.Second)
		if err != nil {
			t.Fatalf("job %d: no ack: %v", reqID, err)
		}
		var ack wire.Msg
		if len(b) < 4 {
			t.Fatalf("job %d: got a %d-byte reply", reqID, len(b))
		}
		if err := wire.Decode(b[4:], &ack); err != nil {
			t.Fatalf("job %d: ack: %v", reqID, err)
		}
		if ack.Kind != wire.KindAck || ack.Err != "" || ack.Flags != 0 {
			t.Fatalf("job %d: got kind %d err %q flags %d, want a plain ack", reqID, ack.Kind, ack.Err, ack.Flags)
		}
	}
	send(1, wire.ID{})
	send(2, wire.ID{})
	send(3, wire.ID{})
	if got := ran.Load(); got != 3 {
		t.Fatalf("got %d runs of 3 jobs without an id, want 3", got)
	}
	send(4, wire.ID{7})
	send(5, wire.ID{7})
	testutil.Eventually(t, 5*time.Second, func() error {
		st := w.Stats()
		if got := ran.Load(); got != 4 || st.Duplicates != 1 {
			return fmt.Errorf("got %d runs and %d duplicates, want 4 and 1", got, st.Duplicates)
		}
		return nil
	})
}
