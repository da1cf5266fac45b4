package pubsub_test

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pubsub"
)

// With backpressure on both sides and small queues, a subscriber much
// slower than the publisher loses nothing: Publish waits for it.
func TestBackpressureSlowSubscriberLosesNothing(t *testing.T) {
	addr := testutil.FreeTCP(t)
	small := []pubsub.Option{pubsub.WithBackpressure(10 * time.Second), pubsub.WithQueueLen(64), pubsub.WithQueueBytes(64 << 10), pubsub.WithCodec(spmesh.Raw)}
	p := mustPub(t, append([]pubsub.Option{pubsub.WithListen(addr)}, small...)...)
	s := mustSub(t, append([]pubsub.Option{pubsub.WithDial(addr), pubsub.WithSubscribe("bp")}, small...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	const n = 20_000
	body := make([]byte, 1024) // 20 MB: far more than the queues and the kernel's buffers hold
	var got atomic.Uint64
	done := make(chan error, 1)
	go func() {
		for i := range n {
			m, err := s.Next(ctx)
			if err != nil {
				done <- err
				return
			}
			if m.Seq != uint64(i+1) {
				done <- fmt.Errorf("got seq %d, want %d", m.Seq, i+1)
				return
			}
			got.Add(1)
			if i%64 == 0 {
				time.Sleep(time.Millisecond) // a slow consumer, not synchronisation
			}
		}
		done <- nil
	}()
	for range n {
		if err := p.PublishBytes(ctx, "bp", nil, body); err != nil {
			t.Fatalf("publish after %d received: %v", got.Load(), err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ps, st := s.Stats().Publishers[p.ID()], p.Stats(); ps.Gaps != 0 || st.Dropped != 0 {
		t.Fatalf("got %d gaps, publisher dropped %d: want none", ps.Gaps, st.Dropped)
	}
}

// A subscriber that takes nothing is cut off after the stall time, and
// the others go on receiving everything.
func TestBackpressureStalledSubscriberCutOff(t *testing.T) {
	// The stall time is all the slack the publisher gives any subscriber,
	// the good one too, whose reads in this process (under -race, on a
	// loaded machine) pause as well: under CPU load its publisher waited
	// up to 155 ms for room in its queue, and with a stall of 200 ms it
	// was sometimes cut off itself (a gap, or its last messages lost).
	// 2 s is far beyond such pauses, and is waited once: for the stalled
	// subscriber, after which no more than as much again is published.
	const stall = 2 * time.Second
	addr := testutil.FreeTCP(t)
	small := []pubsub.Option{pubsub.WithBackpressure(stall), pubsub.WithQueueLen(64), pubsub.WithQueueBytes(64 << 10), pubsub.WithCodec(spmesh.Raw)}
	p := mustPub(t, append([]pubsub.Option{pubsub.WithListen(addr)}, small...)...)
	good := mustSub(t, append([]pubsub.Option{pubsub.WithDial(addr), pubsub.WithSubscribe("bp")}, small...)...)
	stalled := mustSub(t, append([]pubsub.Option{pubsub.WithDial(addr), pubsub.WithSubscribe("bp")}, small...)...)
	_ = stalled // never read
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.WaitPeers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	body, last := make([]byte, 1024), []byte("last")
	done := make(chan error, 1)
	go func() {
		for want := uint64(1); ; want++ {
			m, err := good.Next(ctx)
			if err != nil {
				done <- fmt.Errorf("after %d: %w", want-1, err)
				return
			}
			if m.Seq != want {
				done <- fmt.Errorf("got seq %d, want %d", m.Seq, want)
				return
			}
			if bytes.Equal(m.Data, last) {
				done <- nil
				return
			}
		}
	}()
	publish := func(i int, b []byte) {
		if err := p.PublishBytes(ctx, "bp", nil, b); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	// Until the stalled subscriber is cut off (once its queues and the
	// kernel's buffers, a few MB, are full), then as much again, then the
	// last message: the good one gets every one, in order.
	const most = 100_000 // 100 MB: far more than the queues and the kernel's buffers hold
	n := 0
	for ; n%64 != 0 || p.Stats().SendTimeouts == 0; n++ {
		if n == most {
			t.Fatalf("published %d without cutting the stalled subscriber off: %+v", n, p.Stats())
		}
		publish(n, body)
	}
	for i := range n {
		publish(n+i, body)
	}
	publish(2*n, last)
	if err := <-done; err != nil {
		t.Fatalf("good subscriber: %v; publisher: %+v", err, p.Stats())
	}
	st := p.Stats()
	if st.SendTimeouts == 0 || st.Dropped == 0 {
		t.Fatalf("got %+v, want the stalled subscriber cut off (SendTimeouts) and its messages dropped", st)
	}
	t.Logf("publisher: %d cut off, %d dropped for the stalled subscriber after %d of %d messages; last error %q", st.SendTimeouts, st.Dropped, n, 2*n+1, st.LastError)
}

// A lossless subscriber filters like the default one: by pattern, and
// Unsubscribe stops a prefix.
func TestBackpressureSubscriberFilters(t *testing.T) {
	addr := testutil.FreeTCP(t)
	bp := pubsub.WithBackpressure(time.Second)
	p := mustPub(t, pubsub.WithListen(addr), bp)
	s := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("a.*", "c"), bp)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"b.x", "a.x", "a.x.y", "c"} {
		if err := p.Publish(ctx, topic, topic); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"a.x", "c"} {
		m, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Topic != want {
			t.Fatalf("got %q, want %q", m.Topic, want)
		}
	}
	if err := s.Unsubscribe("a.*"); err != nil {
		t.Fatal(err)
	}
	p.Publish(ctx, "a.x", "gone")
	p.Publish(ctx, "c", "last")
	if m, err := s.Next(ctx); err != nil || m.Topic != "c" {
		t.Fatalf("after Unsubscribe: got %v, %v; want c", m, err)
	}
}

// The publisher filters for spmesh subscribers: a flood on a topic that a
// subscriber does not want is never queued for it (no drop for it, even
// with a tiny queue), while a stock SUB, which announces nothing, gets
// everything (and drops). A later Subscribe reaches the publisher.
func TestPublisherSideFiltering(t *testing.T) {
	addr := testutil.FreeTCP(t)
	p := mustPub(t, pubsub.WithListen(addr), pubsub.WithQueueLen(16), pubsub.WithCodec(spmesh.Raw))
	s := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("want.x"), pubsub.WithCodec(spmesh.Raw))
	stock := testutil.DialSPBuffer(t, addr, testutil.ProtoSub, 4<<10) // reads nothing, announces nothing
	_ = stock
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitPeers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	// The subscriber's interest frame arrives soon after it connects;
	// until then the publisher sends it everything. Flood in rounds until
	// one leaves the filtered subscriber without a drop while the stock
	// SUB drops.
	body := make([]byte, 1024)
	testutil.Eventually(t, 10*time.Second, func() error {
		before := p.SubscriberDrops()
		for range 2000 {
			if err := p.PublishBytes(ctx, "other.y", nil, body); err != nil {
				return err
			}
		}
		after := p.SubscriberDrops()
		grew := 0
		for a, d := range after {
			if d > before[a] {
				grew++
			}
		}
		if len(after) != 2 || grew != 1 {
			return fmt.Errorf("drops went from %v to %v: want them to grow for the stock SUB only", before, after)
		}
		return nil
	})
	if st := s.Stats(); st.Received != 0 || st.Dropped != 0 {
		t.Fatalf("filtered subscriber: got %+v, want nothing", st.Stats)
	}
	if err := s.Subscribe("late.*"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if err := p.PublishBytes(ctx, "late.z", nil, []byte("x")); err != nil {
			return err
		}
		c, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		_, err := s.Next(c)
		return err
	})
}
