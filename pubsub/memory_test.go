package pubsub_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/sptcp"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pubsub"
)

// A subscriber that stops reading while a million messages are published
// holds at most its queues: the heap stays under a bound derived from the
// queue settings, far below the 256 MiB that went through.
func TestStalledSubscriberMemoryBounded(t *testing.T) {
	const (
		n     = 1_000_000
		size  = 256
		queue = 128 // WithQueueLen: messages per peer on send, frames and messages on receive
	)
	// What may be held at once, both ends being in this process:
	//   the publisher's per-connection queue: queue messages, in frames
	//                                         whose buffers are at most
	//                                         twice what they hold, plus
	//                                         one batch frame's buffer
	//   the subscriber's socket queue:        queue frames of at most 64 KiB
	//   the subscriber's channel:             queue messages (struct, body)
	//   the publisher's pending buffers:      2 x MaxPendingBytes
	//   the transport's buffers:              write high water + read buffer, each side
	const frame = pubsub.MaxBatchFrame + 1
	held := 2*queue*(size+256) + frame + queue*frame + queue*(size+256) + 2*pubsub.MaxPendingBytes + 2*(sptcp.HighWater+sptcp.ReadBuffer)
	// Garbage awaits collection until the heap doubles (GOGC=100), and
	// mangos' message pools keep freed frames for up to two collections:
	// three times what is held, plus 4 MiB, over the heap before the test.
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	bound := ms.HeapInuse + 3*uint64(held) + 4<<20
	t.Logf("heap in use before: %.1f MiB; bound %.1f MiB", mib(ms.HeapInuse), mib(bound))
	if bound > 64<<20 {
		t.Fatalf("got a bound of %.1f MiB, want it under 64 MiB", mib(bound))
	}

	addr := testutil.FreeTCP(t)
	p := mustPub(t, pubsub.WithListen(addr), pubsub.WithQueueLen(queue))
	s := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("mem.*"), pubsub.WithQueueLen(queue))
	connected(t, p, s, "mem.probe")
	probes := p.Stats().Sent

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
	ctx := context.Background()
	payload := make([]byte, size)
	start := time.Now()
	for range n {
		if err := p.Publish(ctx, "mem.data", payload); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	// Let what is in flight land in the subscriber's queues.
	testutil.Eventually(t, 10*time.Second, func() error {
		if sent := p.Stats().Sent - probes; sent != n {
			return fmt.Errorf("got %d sent, want %d", sent, n)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	t.Logf("published %d x %d B in %v; peak heap in use %.1f MiB (bound %.1f MiB)", n, size, elapsed.Round(time.Millisecond), mib(peak), mib(bound))
	if peak > bound {
		t.Fatalf("got peak heap in use %.1f MiB, want at most %.1f MiB", mib(peak), mib(bound))
	}

	// The subscriber reads again: what it missed shows up as gaps. Markers
	// are published until the last one arrives.
	received, published := uint64(0), uint64(n)
	for range len(s.C()) {
		<-s.C()
		received++
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		p.Publish(ctx, "mem.data", payload)
		published++
		for {
			c, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			m, err := s.Next(c)
			cancel()
			if err != nil {
				return fmt.Errorf("marker of seq %d not received yet", published)
			}
			received++
			if m.Seq == published {
				return nil
			}
		}
	})
	gaps := s.Stats().Publishers[p.ID()].Gaps
	if gaps == 0 || received+gaps != published {
		t.Fatalf("got %d received + %d gaps, want %d published, some of them gaps", received, gaps, published)
	}
	t.Logf("received %d, gaps %d", received, gaps)
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
