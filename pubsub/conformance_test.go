package pubsub_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pubsub"
)

// TestConformance runs the shared suite on both sides of pub/sub, enveloped
// and bare, and the pair check on the two wired together.
func TestConformance(t *testing.T) {
	testutil.Conform(t, map[string]testutil.Pattern{
		"Publisher":       withHostile(publisherPattern(), hostileSubscriber),
		"Publisher/bare":  confPublisher(pubsub.WithBareFrames()),
		"Subscriber":      subscriberPattern(),
		"Subscriber/bare": bareSubscriberPattern(),
	}, map[string]testutil.Pair{
		"Publisher+Subscriber":                 confPair(false),
		"Publisher+Subscriber/bare":            confPair(false, pubsub.WithBareFrames()),
		"Publisher+Subscriber/subscriberBinds": confPair(true),
	})
}

// confPublisher opens a publisher; with no subscriber, the suite waits on
// WaitPeers.
func confPublisher(opts ...pubsub.Option) testutil.Pattern {
	return testutil.Pattern{
		Open: func(t *testing.T, addr string) io.Closer {
			p, err := pubsub.NewPublisher(append(opts, pubsub.WithListen(addr))...)
			return testutil.Open(t, p, err)
		},
		Listens: true,
		Invalid: map[string]func() error{
			"subscribe on a publisher": func() error {
				_, err := pubsub.NewPublisher(append(opts, pubsub.WithSubscribe("a"))...)
				return err
			},
			"queue zero":    func() error { _, err := pubsub.NewPublisher(append(opts, pubsub.WithQueueLen(0))...); return err },
			"tiny max size": func() error { _, err := pubsub.NewPublisher(append(opts, pubsub.WithMaxMessageSize(1))...); return err },
			"bad address":   func() error { _, err := pubsub.NewPublisher(append(opts, pubsub.WithListen("foo://x"))...); return err },
		},
	}
}

// confPair: a publisher listens, a subscriber of the pair's topic dials it
// (the other way round when rev); message i is the int i on that topic.
func confPair(rev bool, opts ...pubsub.Option) testutil.Pair {
	const topic = "conform.n"
	return testutil.Pair{
		Open: func(t *testing.T, addr string, _ func(int)) (io.Closer, io.Closer) {
			listen, dial := pubsub.WithListen(addr), pubsub.WithDial(addr)
			if rev {
				listen, dial = dial, listen
			}
			p, err := pubsub.NewPublisher(append(opts, listen)...)
			a := testutil.Open(t, p, err)
			s, err := pubsub.NewSubscriber(append(opts, dial, pubsub.WithSubscribe(topic))...)
			return a, testutil.Open(t, s, err)
		},
		Send: func(ctx context.Context, a io.Closer, i int) error {
			return a.(*pubsub.Publisher).Publish(ctx, topic, i)
		},
		Ordered: true,
		Recv: func(ctx context.Context, b io.Closer) (int, error) {
			m, err := b.(*pubsub.Subscriber).Next(ctx)
			if err != nil {
				return 0, err
			}
			var i int
			err = m.Decode(&i)
			return i, err
		},
	}
}

func withHostile(p testutil.Pattern, h func(t *testing.T, s io.Closer, addr string, frames [][]byte)) testutil.Pattern {
	p.Hostile = h
	return p
}

// hostileSubscriber sends the publisher s garbage from a raw SP SUB peer
// over TCP (a subscriber sends only interest frames): each frame is
// counted as a decode error, and a proper subscriber still gets what is
// published.
func hostileSubscriber(t *testing.T, s io.Closer, addr string, frames [][]byte) {
	if !strings.HasPrefix(addr, "tcp://") {
		t.Skip("the raw peer speaks SP over TCP")
	}
	p := s.(*pubsub.Publisher)
	raw := testutil.DialSP(t, addr, testutil.ProtoSub)
	for i, f := range frames {
		if err := raw.Send(f); err != nil {
			t.Fatalf("hostile frame %d: %v", i, err)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := p.Stats().DecodeErrors; got != uint64(len(frames)) {
			return fmt.Errorf("DecodeErrors after %d hostile frames: got %d, want %d", len(frames), got, len(frames))
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := pubsub.NewSubscriber(pubsub.WithDial(addr), pubsub.WithSubscribe("t"))
	sub = testutil.Open(t, sub, err)
	if err := p.WaitPeers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, "t", 1); err != nil {
		t.Fatal(err)
	}
	m, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("proper subscriber after the hostile frames: got %v, want the message", err)
	}
	var i int
	if err := m.Decode(&i); err != nil || i != 1 {
		t.Fatalf("message: got %d, %v, want 1", i, err)
	}
}
