package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/pubsub"
)

// fillSlow opens a publisher (no batching: a frame per message) with room
// for n messages of size bytes per subscriber, connects a raw subscriber
// that reads nothing yet (a 4 KiB receive buffer: what it leaves unread
// backs up into the publisher's queue) and publishes the n messages.
func fillSlow(t *testing.T, n, size int) (*pubsub.Publisher, *testutil.RawSP) {
	t.Helper()
	addr := testutil.FreeTCP(t)
	p := mustPub(t, pubsub.WithListen(addr), pubsub.WithBatching(false),
		pubsub.WithQueueLen(2*n), pubsub.WithQueueBytes(1<<30))
	raw := testutil.DialSPBuffer(t, addr, testutil.ProtoSub, 4<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, size)
	for i := range n {
		if err := p.PublishBytes(ctx, "slow", nil, body); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	return p, raw
}

func TestPublisherDrainDeliversToSlowSubscriber(t *testing.T) {
	const n, size = 1000, 8 << 10 // 8 MB: more than the kernel buffers hold
	p, raw := fillSlow(t, n, size)
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		drained <- p.Drain(ctx)
	}()
	// The subscriber reads only now, after Drain started: every message
	// queued for it must still arrive.
	got := 0
	for got < n {
		b, err := raw.Recv(10 * time.Second)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v (%+v)", got, n, err, p.Stats())
		}
		var env wire.Msg
		if err := wire.Decode(b, &env); err != nil {
			t.Fatal(err)
		}
		if env.Kind == wire.KindPublish {
			got++
		}
	}
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("Drain = %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Drain still running 30s after the subscriber read everything")
	}
	if st := p.Stats(); st.Dropped != 0 || st.Sent != n {
		t.Fatalf("Stats: Sent %d Dropped %d, want %d and 0", st.Sent, st.Dropped, n)
	}
	if err := p.Publish(context.Background(), "slow", 1); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Publish after Drain = %v, want ErrClosed", err)
	}
	if err := p.Drain(context.Background()); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("second Drain = %v, want ErrClosed", err)
	}
}

func TestPublisherDrainExpires(t *testing.T) {
	const n, size = 2000, 8 << 10 // 16 MB, never read
	p, _ := fillSlow(t, n, size)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain = %v, want DeadlineExceeded", err)
	}
	// Closed anyway, and what was left queued is counted.
	if err := p.Publish(context.Background(), "slow", 1); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Publish after Drain = %v, want ErrClosed", err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if st := p.Stats(); st.Dropped == 0 || st.DroppedClosed != st.Dropped {
			return fmt.Errorf("queued messages not counted as dropped (closed): %+v", st)
		}
		return nil
	})
}

func TestPublisherDrainIdleAndClose(t *testing.T) {
	for _, opts := range [][]pubsub.Option{nil, {pubsub.WithBatching(false)}, {pubsub.WithBareFrames()}} {
		p := mustPub(t, append(opts, pubsub.WithListen(testutil.Inproc(t)))...)
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range 2 {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = p.Drain(context.Background()) }()
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[2] = p.Close() }()
		wg.Wait()
		// Whichever closes first wins; the others find it closed.
		for i, err := range errs {
			if err != nil && !errors.Is(err, spmesh.ErrClosed) {
				t.Fatalf("%v: call %d = %v, want nil or ErrClosed", opts, i, err)
			}
		}
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

func TestConformancePublisher(t *testing.T) {
	testutil.Run(t, testutil.Pattern{
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
	})
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
