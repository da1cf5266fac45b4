package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pubsub"
)

// A stalled subscriber costs the publisher one shed wait, not one per
// message: with a wait of 300 ms, 20,000 messages are all published well
// within a deadline that one wait per message (100 minutes) would blow,
// the stalled subscriber's messages are counted as dropped for it, and a
// second subscriber that keeps reading gets every message (or counts it
// as a gap), exactly.
func TestShedWaitOncePerEpisode(t *testing.T) {
	addr := testutil.FreeTCP(t)
	const wait = 300 * time.Millisecond
	p := mustPub(t, pubsub.WithListen(addr), pubsub.WithCodec(spmesh.Raw), pubsub.WithShedWait(wait),
		pubsub.WithQueueLen(64), pubsub.WithQueueBytes(64<<10))
	fast := mustSub(t, pubsub.WithDial(addr), pubsub.WithCodec(spmesh.Raw), pubsub.WithSubscribe("sw"))
	// Stalled: a lossless subscriber whose application takes nothing stops
	// reading its connection once its small queues are full.
	stalled := mustSub(t, pubsub.WithDial(addr), pubsub.WithCodec(spmesh.Raw), pubsub.WithSubscribe("sw"),
		pubsub.WithBackpressure(time.Hour), pubsub.WithQueueLen(64), pubsub.WithQueueBytes(64<<10))
	_ = stalled
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.WaitPeers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	var got atomic.Uint64
	go func() {
		for range fast.C() {
			got.Add(1)
		}
	}()
	const n = 20_000
	body := make([]byte, 1024)
	start := time.Now()
	for i := range n {
		if err := p.PublishBytes(ctx, "sw", nil, body); err != nil {
			t.Fatalf("publish %d: %v (one shed wait per message?)", i, err)
		}
	}
	t.Logf("published %d x 1 KiB in %v with a stalled subscriber (shed wait %v)", n, time.Since(start), wait)
	testutil.Eventually(t, 30*time.Second, func() error {
		gaps := fast.Stats().Publishers[p.ID()].Gaps
		if r := got.Load(); r+gaps != n {
			return fmt.Errorf("fast subscriber: %d received + %d gaps, want %d", r, gaps, n)
		}
		return nil
	})
	st, drops := p.Stats(), p.SubscriberDrops()
	var sum, most uint64
	for _, d := range drops {
		sum += d
		most = max(most, d)
	}
	if st.Dropped == 0 || sum != st.Dropped {
		t.Fatalf("publisher dropped %d, per subscriber %v: want the stalled one's drops, all counted", st.Dropped, drops)
	}
	if most < n/2 {
		t.Fatalf("per subscriber drops %v: want most of the %d messages dropped for the stalled one", drops, n)
	}
	t.Logf("fast subscriber: %d received, %d gaps; publisher drops per subscriber %v", got.Load(), fast.Stats().Publishers[p.ID()].Gaps, drops)
}

// WithShedWait validates its range and is for publishers only.
func TestShedWaitOption(t *testing.T) {
	for _, d := range []time.Duration{-time.Millisecond, 2 * time.Second} {
		if _, err := pubsub.NewPublisher(pubsub.WithShedWait(d)); !errors.Is(err, spmesh.ErrInvalidOption) {
			t.Errorf("WithShedWait(%v): got %v, want ErrInvalidOption", d, err)
		}
	}
	if _, err := pubsub.NewSubscriber(pubsub.WithShedWait(0)); !errors.Is(err, spmesh.ErrInvalidOption) {
		t.Errorf("Subscriber WithShedWait: got %v, want ErrInvalidOption", err)
	}
	p, err := pubsub.NewPublisher(pubsub.WithShedWait(0))
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
}
