package pipeline_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/pipeline"
	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/pull"
)

// counting starts a goroutine counting what pl receives; it ends when pl
// closes.
func counting(pl *pipeline.Puller) *atomic.Int64 {
	n := new(atomic.Int64)
	go func() {
		for range pl.C() {
			n.Add(1)
		}
	}()
	return n
}

// TestPusherSharesEvenly: 3 equal pullers, 3,000 messages pushed in a
// tight loop: each gets a third, within 5% (the Pusher goes round robin
// over the pullers with room; mangos' PUSH gave each message to whichever
// connection was ready first).
func TestPusherSharesEvenly(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		const pullers, total = 3, 3000
		var counts []*atomic.Int64
		var opts []pipeline.Option
		for i := range pullers {
			pl := mustPuller(t)
			opts = append(opts, pipeline.WithDial(listen(t, pl, suffix(addr, i))))
			counts = append(counts, counting(pl))
		}
		p := mustPusher(t, opts...)
		peers(t, p, pullers)
		ctx := ctxT(t, 30*time.Second)
		for i := range total {
			if err := p.Push(ctx, i); err != nil {
				t.Fatal(err)
			}
		}
		got := make([]int64, pullers)
		testutil.Eventually(t, 10*time.Second, func() error {
			var sum int64
			for i, c := range counts {
				got[i] = c.Load()
				sum += got[i]
			}
			if sum != total {
				return fmt.Errorf("received %d of %d (%v)", sum, total, got)
			}
			return nil
		})
		for i, n := range got {
			if n < total/pullers*95/100 || n > total/pullers*105/100 {
				t.Errorf("puller %d: got %d of %d, want %d ± 5%% (all: %v)", i, n, total, total/pullers, got)
			}
		}
	})
}

// TestPusherSkipsStalledPuller: a puller that stops reading gets no more
// than its queues hold; the others get the rest, and Push does not block.
func TestPusherSkipsStalledPuller(t *testing.T) {
	addr := testutil.Inproc(t)
	stalled := mustPuller(t, pipeline.WithQueueLen(1)) // nobody reads it
	a := listen(t, stalled, suffix(addr, 0))
	live := mustPuller(t)
	b := listen(t, live, suffix(addr, 1))
	n := counting(live)
	p := mustPusher(t, pipeline.WithDial(a), pipeline.WithDial(b), pipeline.WithQueueLen(8))
	peers(t, p, 2)
	const total = 2000
	ctx := ctxT(t, 30*time.Second)
	for i := range total {
		if err := p.Push(ctx, i); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	// The stalled puller holds at most: its channel (1), what its
	// connection has taken, and the Pusher's queue for it (8).
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := n.Load(); got < total-16 {
			return fmt.Errorf("live puller got %d of %d, want all but the stalled one's few", got, total)
		}
		return nil
	})
}

// TestPusherToStockPull: the Pusher speaks the standard PUSH wire
// protocol: a stock mangos PULL socket receives its messages as frames
// that are spmesh pipeline messages.
func TestPusherToStockPull(t *testing.T) {
	s, err := pull.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetOption(mangos.OptionRecvDeadline, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeTCP(t)
	if err := s.Listen(addr); err != nil {
		t.Fatal(err)
	}
	p := mustPusher(t, pipeline.WithDial(addr))
	peers(t, p, 1)
	ctx := ctxT(t, 10*time.Second)
	const n = 10
	for i := range n {
		if err := p.Push(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		b, err := s.Recv()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		var env wire.Msg
		if err := wire.Decode(b, &env); err != nil || env.Kind != wire.KindPush {
			t.Fatalf("frame %d: got kind %v, error %v; want a push message", i, env.Kind, err)
		}
	}
}
