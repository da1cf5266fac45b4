package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pubsub"
)

// A subscriber that stops reading while 4,096 x 128 KiB messages arrive
// (512 MiB) holds at most about WithQueueBytes of them: its oldest are
// dropped to make room, counted as gaps, and the rest are delivered when it
// reads again.
func TestStalledSubscriberQueueBytes(t *testing.T) {
	const (
		n      = 4096
		size   = 128 << 10
		qbytes = pubsub.DefaultQueueBytes
	)
	addr := testutil.FreeTCP(t)
	p := mustPub(t, pubsub.WithListen(addr))
	s := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("big.*"))
	connected(t, p, s, "big.probe")

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	arrived := func() uint64 { st := s.Stats(); return st.Received + st.Dropped }
	start := arrived()
	ctx := context.Background()
	payload := make([]byte, size)
	for i := range n {
		if err := p.Publish(ctx, "big.data", payload); err != nil {
			t.Fatal(err)
		}
		if i%64 == 63 {
			// Pace the publisher so that its own queue (not under test)
			// stays short: let what was published arrive first.
			testutil.Until(time.Second, func() error {
				if got := arrived() - start; got+64 < uint64(i+1) {
					return fmt.Errorf("%d arrived", got)
				}
				return nil
			})
		}
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		if got := arrived() - start; got != n {
			return fmt.Errorf("got %d messages arrived (received or dropped), want %d", got, n)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	held := int64(ms.HeapInuse) - int64(base)
	queued := len(s.C())
	t.Logf("stalled subscriber, %d x %d KiB: %d queued (%.1f MiB), heap held %.1f MiB after GC, peak %.1f MiB over the base of %.1f MiB",
		n, size>>10, queued, mib(uint64(queued*size)), float64(held)/(1<<20), mib(peak-min(peak, base)), mib(base))
	if queued*size > qbytes {
		t.Fatalf("got %d messages of %d bytes queued, want at most %d bytes", queued, size, qbytes)
	}
	if held > 2*qbytes+16<<20 {
		t.Fatalf("got %.1f MiB held, want under %d MiB", float64(held)/(1<<20), (2*qbytes+16<<20)>>20)
	}
	// What was dropped shows up as gaps; the rest is delivered.
	got := 0
	for range queued {
		<-s.C()
		got++
	}
	ps := s.Stats().Publishers[p.ID()]
	if ps.Gaps == 0 || uint64(got)+ps.Gaps != n {
		t.Fatalf("got %d delivered + %d gaps, want %d", got, ps.Gaps, n)
	}
}

// A Publish over the limit fails with ErrTooLarge, before encoding when
// the size is known, and is counted; nothing is sent.
func TestPublishTooLarge(t *testing.T) {
	for _, batching := range []bool{true, false} {
		t.Run(fmt.Sprintf("batching=%v", batching), func(t *testing.T) {
			p := mustPub(t, pubsub.WithListen(testutil.FreeTCP(t)), pubsub.WithMaxMessageSize(64<<10), pubsub.WithBatching(batching))
			ctx := context.Background()
			bodies := []any{make([]byte, 1<<20), string(make([]byte, 1<<20)), struct{ B []byte }{make([]byte, 1<<20)}, make([]byte, 64<<10)}
			for _, v := range bodies {
				if err := p.Publish(ctx, "t", v); !errors.Is(err, spmesh.ErrTooLarge) {
					t.Fatalf("%T: got %v, want ErrTooLarge", v, err)
				}
			}
			if err := p.PublishBytes(ctx, "t", nil, make([]byte, 1<<20)); !errors.Is(err, spmesh.ErrTooLarge) {
				t.Fatalf("PublishBytes: got %v, want ErrTooLarge", err)
			}
			if st := p.Stats(); st.TooLarge != uint64(len(bodies)+1) || st.Sent != 0 {
				t.Fatalf("got %d too large, %d sent; want %d, 0", st.TooLarge, st.Sent, len(bodies)+1)
			}
		})
	}
}

// A subscriber connection that does not keep up makes the publisher drop
// the messages for it (never blocking): counted in Dropped and per
// subscriber, while a subscriber that keeps up loses nothing.
func TestPublisherCountsDrops(t *testing.T) {
	addr := testutil.FreeTCP(t)
	p := mustPub(t, pubsub.WithListen(addr), pubsub.WithQueueLen(4))
	good := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("d.*"))
	connected(t, p, good, "d.probe")
	bad := testutil.DialSPBuffer(t, addr, testutil.ProtoSub, 4<<10) // never reads
	_ = bad
	ctx := context.Background()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.WaitPeers(wctx, 2); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 64<<10)
	const n = 1000 // 64 MiB, far more than the buffers on the way hold
	received := 0
	for range n {
		if err := p.Publish(ctx, "d.data", payload); err != nil {
			t.Fatal(err)
		}
		// In step with the good subscriber, which thus never lags.
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := good.Next(c)
		cancel()
		if err != nil {
			t.Fatalf("good subscriber, message %d: got %v", received, err)
		}
		received++
	}
	// The last message's frame may still be in the flusher's fan-out,
	// queued for the good subscriber (which got it) and not yet dropped
	// for the other: the two counts, read one after the other, agree
	// once it is done.
	testutil.Eventually(t, 10*time.Second, func() error {
		st, drops := p.Stats(), p.SubscriberDrops()
		sum, nonzero := uint64(0), 0
		for _, d := range drops {
			sum += d
			if d > 0 {
				nonzero++
			}
		}
		if len(drops) != 2 || nonzero != 1 || sum != st.Dropped {
			return fmt.Errorf("got per-subscriber drops %v (Dropped %d), want 2 subscribers, drops for one, summing to Dropped", drops, st.Dropped)
		}
		t.Logf("publisher: %d dropped, per subscriber %v; good subscriber received %d of %d", st.Dropped, drops, received, n)
		return nil
	})
}

func TestQueueBytesInvalid(t *testing.T) {
	if _, err := pubsub.NewSubscriber(pubsub.WithQueueBytes(10)); !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), "WithQueueBytes") {
		t.Fatalf("got %v, want ErrInvalidOption naming WithQueueBytes", err)
	}
}
