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
	"github.com/spmesh/spmesh/pubsub"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type event struct {
	Name string
	N    int
}

func mustPub(t *testing.T, opts ...pubsub.Option) *pubsub.Publisher {
	t.Helper()
	p, err := pubsub.NewPublisher(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func mustSub(t *testing.T, opts ...pubsub.Option) *pubsub.Subscriber {
	t.Helper()
	s, err := pubsub.NewSubscriber(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// connected publishes probes on topic until s receives one, so that the
// subscription is known to be live; it returns how many probes were sent.
func connected(t *testing.T, p *pubsub.Publisher, s *pubsub.Subscriber, topic string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		if err := p.Publish(context.Background(), topic, event{Name: "probe"}); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := s.Next(ctx)
		return err
	})
	// Drain the probes still in flight.
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := s.Next(ctx)
		cancel()
		if err != nil {
			return
		}
	}
}

func transports(t *testing.T, f func(t *testing.T, addr string)) {
	t.Run("inproc", func(t *testing.T) { f(t, testutil.Inproc(t)) })
	t.Run("tcp", func(t *testing.T) { f(t, testutil.FreeTCP(t)) })
}

func TestPublishReceive(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		p := mustPub(t, pubsub.WithListen(addr))
		s := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("images.ready"))
		connected(t, p, s, "images.ready")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := range 100 {
			if err := p.PublishHeader(ctx, "images.ready", spmesh.Header{"trace": fmt.Sprint(i)}, event{"img", i}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 100 {
			m, err := s.Next(ctx)
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			ev, err := spmesh.Decode[event](m)
			if err != nil {
				t.Fatal(err)
			}
			if ev.N != i || m.Header.Get("trace") != fmt.Sprint(i) || m.Topic != "images.ready" || m.Publisher != p.ID() {
				t.Fatalf("got %+v %+v, want event %d from publisher %x", ev, m, i, p.ID())
			}
		}
		if st := s.Stats(); st.Dropped != 0 || st.Publishers[p.ID()].Gaps != 0 {
			t.Fatalf("got %+v, want no drops", st)
		}
	})
}

func subscriberPattern() testutil.Pattern {
	return testutil.Pattern{
		Open: func(t *testing.T, addr string) io.Closer {
			return mustSub(t, pubsub.WithListen(addr), pubsub.WithSubscribe(">"))
		},
		Listens: true,
		Wait: func(ctx context.Context, s io.Closer) error {
			_, err := s.(*pubsub.Subscriber).Next(ctx)
			return err
		},
		Invalid: map[string]func() error{
			"nil codec":     func() error { _, err := pubsub.NewSubscriber(pubsub.WithCodec(nil)); return err },
			"bad address":   func() error { _, err := pubsub.NewPublisher(pubsub.WithListen("foo://x")); return err },
			"queue zero":    func() error { _, err := pubsub.NewSubscriber(pubsub.WithQueueLen(0)); return err },
			"tiny max size": func() error { _, err := pubsub.NewPublisher(pubsub.WithMaxMessageSize(1)); return err },
			"bad pattern":   func() error { _, err := pubsub.NewSubscriber(pubsub.WithSubscribe("a.>.b")); return err },
			"backoff": func() error {
				_, err := pubsub.NewSubscriber(pubsub.WithReconnect(time.Second, time.Millisecond))
				return err
			},
			"nil registry": func() error { _, err := pubsub.NewSubscriber(pubsub.WithDiscovery(nil, "x")); return err },
		},
		Hostile: hostile,
	}
}

func TestPublishErrors(t *testing.T) {
	p := mustPub(t, pubsub.WithListen(testutil.Inproc(t)), pubsub.WithMaxMessageSize(1024))
	ctx := context.Background()
	for _, topic := range []string{"", "a..b", "a.*", "a.>", ".a", "a.", "a b", "a\x00b"} {
		if err := p.Publish(ctx, topic, 1); !errors.Is(err, spmesh.ErrInvalidTopic) {
			t.Errorf("topic %q: got %v, want ErrInvalidTopic", topic, err)
		}
	}
	if err := p.Publish(ctx, "big", make([]byte, 2048)); !errors.Is(err, spmesh.ErrTooLarge) {
		t.Errorf("oversized: got %v, want ErrTooLarge", err)
	}
	p.Close()
	if err := p.Publish(ctx, "a", 1); !errors.Is(err, spmesh.ErrClosed) {
		t.Errorf("after close: got %v, want ErrClosed", err)
	}
}

func TestPublishBytes(t *testing.T) {
	addr := testutil.Inproc(t)
	p := mustPub(t, pubsub.WithListen(addr))
	s := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("b"))
	connected(t, p, s, "b")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The body is already msgpack, the subscriber's codec.
	small, _ := spmesh.Msgpack.Marshal(event{Name: "small", N: 1})
	large, _ := spmesh.Msgpack.Marshal(event{Name: string(make([]byte, 10000)), N: 2})
	for i, b := range [][]byte{small, large, small} {
		if err := p.PublishBytes(ctx, "b", spmesh.Header{"i": fmt.Sprint(i)}, b); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []int{1, 2, 1} {
		m, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := spmesh.Decode[event](m)
		if err != nil || ev.N != want || m.Header.Get("i") != fmt.Sprint(i) {
			t.Fatalf("message %d: got %d, header %v (%v), want %d", i, ev.N, m.Header, err, want)
		}
	}
	if err := p.PublishBytes(ctx, "a.*", nil, small); !errors.Is(err, spmesh.ErrInvalidTopic) {
		t.Fatalf("wildcard topic: got %v, want ErrInvalidTopic", err)
	}
}
