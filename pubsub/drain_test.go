package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/pubsub"
)

// slowDrain: a publisher (no batching: a frame per message) with room for
// n messages of any size per subscriber, and a raw subscriber.
var slowDrain = testutil.SlowDrain{
	Proto: testutil.ProtoSub,
	Kind:  wire.KindPublish,
	Open: func(t *testing.T, addr string, n int) testutil.Sender {
		return mustPub(t, pubsub.WithListen(addr), pubsub.WithBatching(false),
			pubsub.WithQueueLen(2*n), pubsub.WithQueueBytes(1<<30))
	},
	Send: func(ctx context.Context, s testutil.Sender, body []byte) error {
		return s.(*pubsub.Publisher).PublishBytes(ctx, "slow", nil, body)
	},
}

func TestPublisherDrainDeliversToSlowSubscriber(t *testing.T) {
	slowDrain.Delivers(t, 1000, 8<<10) // 8 MB: more than the kernel buffers hold
}

func TestPublisherDrainExpires(t *testing.T) {
	slowDrain.Expires(t, 2000, 8<<10) // 16 MB, never read
}

func TestPublisherDrainIdleAndClose(t *testing.T) {
	for _, opts := range [][]pubsub.Option{nil, {pubsub.WithBatching(false)}, {pubsub.WithBareFrames()}} {
		p := mustPub(t, append(opts, pubsub.WithListen(testutil.Inproc(t)))...)
		testutil.DrainRacesClose(t, p)
		if err := p.Publish(context.Background(), "a", 1); !errors.Is(err, spmesh.ErrClosed) {
			t.Fatalf("Publish after Drain = %v, want ErrClosed", err)
		}
	}
}

func TestAddrsListeners(t *testing.T) {
	addr := testutil.FreeTCP(t)
	p := mustPub(t, pubsub.WithListen(addr))
	if got := p.Addrs(); len(got) != 1 || got[0] != addr {
		t.Fatalf("Publisher.Addrs = %v, want [%s]", got, addr)
	}
	addr2 := testutil.FreeTCP(t)
	s := mustSub(t, pubsub.WithListen(addr2), pubsub.WithSubscribe(">"))
	if got := s.Addrs(); len(got) != 1 || got[0] != addr2 {
		t.Fatalf("Subscriber.Addrs = %v, want [%s]", got, addr2)
	}
}

func publisherPattern() testutil.Pattern {
	return testutil.Pattern{
		Open: func(t *testing.T, addr string) io.Closer {
			return mustPub(t, pubsub.WithListen(addr))
		},
		// With no subscriber, WaitPeers blocks until ctx ends.
		Wait: func(ctx context.Context, s io.Closer) error {
			return s.(*pubsub.Publisher).WaitPeers(ctx, 1)
		},
		Invalid: map[string]func() error{
			"subscribe on a publisher": func() error { _, err := pubsub.NewPublisher(pubsub.WithSubscribe(">")); return err },
			"queue zero":               func() error { _, err := pubsub.NewPublisher(pubsub.WithQueueLen(0)); return err },
			"tiny max size":            func() error { _, err := pubsub.NewPublisher(pubsub.WithMaxMessageSize(1)); return err },
		},
		Listens: true,
	}
}

// A subscriber's Drain returns once the application has taken, with Next,
// every message queued, and Next then reports the subscriber closed
// (internal/sock's TestInboxDrainWokenByNext checks that Next wakes it).
func TestSubscriberDrainWokenByNext(t *testing.T) {
	const n = 100
	addr := testutil.FreeTCP(t)
	p := mustPub(t, pubsub.WithListen(addr), pubsub.WithCodec(spmesh.Raw))
	s := mustSub(t, pubsub.WithDial(addr), pubsub.WithCodec(spmesh.Raw), pubsub.WithSubscribe("drain"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := p.PublishBytes(ctx, "drain", nil, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := testutil.Until(10*time.Second, func() error {
		if got := s.Stats().Received; got != n {
			return fmt.Errorf("%d of %d queued", got, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	drained := make(chan error, 1)
	go func() { drained <- s.Drain(ctx) }()
	// Drain closes the socket first: from then on it waits for the
	// application, with every message still queued.
	if err := testutil.Until(10*time.Second, func() error {
		if err := s.Unsubscribe("none"); !errors.Is(err, spmesh.ErrClosed) {
			return fmt.Errorf("Unsubscribe = %v: Drain has not started", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := s.Next(ctx); err != nil {
			t.Fatalf("Next %d of %d: %v", i, n, err)
		}
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain = %v, want nil: not woken when the last message was taken", err)
	}
	if _, err := s.Next(ctx); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Next after Drain = %v, want ErrClosed", err)
	}
}
