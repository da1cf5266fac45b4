package pubsub_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pubsub"
)

// Once Publisher.WaitPeers returns, a message published at once reaches
// every subscriber: no probe needed. Over TCP, three subscribers.
func TestWaitPeersThenPublish(t *testing.T) {
	addr := testutil.FreeTCP(t)
	p := mustPub(t, pubsub.WithListen(addr))
	var subs []*pubsub.Subscriber
	for range 3 {
		subs = append(subs, mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("w.>")))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitPeers(ctx, 3); err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		if err := s.WaitPeers(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	const n = 100
	for i := range n {
		if err := p.Publish(ctx, "w.x", i); err != nil {
			t.Fatal(err)
		}
	}
	for si, s := range subs {
		for i := range n {
			m, err := s.Next(ctx)
			if err != nil {
				t.Fatalf("sub %d msg %d: %v", si, i, err)
			}
			if m.Seq != uint64(i+1) {
				t.Fatalf("sub %d: got seq %d, want %d (a message published after WaitPeers was lost)", si, m.Seq, i+1)
			}
		}
	}
}

// A subscriber dialing nobody fails with the deadline and the dial error.
func TestWaitPeersNobody(t *testing.T) {
	s := mustSub(t, pubsub.WithDial(testutil.FreeTCP(t)), pubsub.WithSubscribe(">"))
	testutil.Eventually(t, 10*time.Second, func() error {
		if s.Stats().LastError == "" {
			return errors.New("no dial error yet")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := s.WaitPeers(ctx, 1)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "last error") {
		t.Fatalf("got %v, want DeadlineExceeded with the last error", err)
	}
}

// The flow-control options validate and name themselves.
func TestFlowOptionsValidate(t *testing.T) {
	cases := map[string]pubsub.Option{
		"WithTailInterval":   pubsub.WithTailInterval(-time.Second),
		"WithSlowSubscriber": pubsub.WithSlowSubscriber(nil),
		"WithGapHandler":     pubsub.WithGapHandler(nil),
		"WithBackpressure":   pubsub.WithBackpressure(0),
	}
	for name, o := range cases {
		if _, err := pubsub.NewPublisher(o); !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), name) {
			t.Errorf("got %v, want ErrInvalidOption naming %s", err, name)
		}
	}
	if _, err := pubsub.NewPublisher(pubsub.WithTailInterval(time.Microsecond)); !errors.Is(err, spmesh.ErrInvalidOption) {
		t.Errorf("1µs tail interval: got %v, want ErrInvalidOption", err)
	}
}

// A subscriber that connects mid-stream starts counting at the first
// message it gets: what was published before it joined is no gap; tail
// frames (every millisecond of idleness here) add none either.
func TestTailMidStreamJoinerCountsNoGap(t *testing.T) {
	addr := testutil.FreeTCP(t)
	p := mustPub(t, pubsub.WithListen(addr), pubsub.WithTailInterval(time.Millisecond))
	early := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("m"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := p.Publish(ctx, "m", i); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		if _, err := early.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	late := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("m"))
	if err := p.WaitPeers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, "m", 10); err != nil {
		t.Fatal(err)
	}
	m, err := late.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq != 11 {
		t.Fatalf("late subscriber: got seq %d, want 11", m.Seq)
	}
	for _, s := range []*pubsub.Subscriber{early, late} {
		if g := s.Stats().Publishers[p.ID()].Gaps; g != 0 {
			t.Fatalf("got %d gaps, want 0", g)
		}
	}
}
