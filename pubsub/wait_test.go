package pubsub_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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
