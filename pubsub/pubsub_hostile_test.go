package pubsub_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	hp "github.com/spmesh/spmesh/internal/hostile"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/pubsub"
)

// legitLoop is the legit peer of both pub/sub targets: publish a numbered
// message of size bytes, then read until it arrives, decoding whatever
// else arrives (the attacker's) into every type of the suite.
func legitLoop(p *pubsub.Publisher, s *pubsub.Subscriber, size int) func(ctx context.Context) error {
	seq := 0
	pad := strings.Repeat("x", size)
	return func(ctx context.Context) error {
		seq++
		want := fmt.Sprint("legit-", seq, pad)
		if err := p.Publish(ctx, "t", want); err != nil {
			return err
		}
		for {
			m, err := s.Next(ctx)
			if err != nil {
				return err
			}
			var got string
			if m.Decode(&got) == nil && strings.HasPrefix(got, "legit-") {
				if got == want {
					return nil
				}
				continue // an earlier one, late
			}
			hp.DecodeTypes(m.Decode)
		}
	}
}

// TestSubscriberHostilePeers runs the hostile-peer suite against a
// Subscriber over real TCP: it dials a legit Publisher and each hostile
// publisher (a raw listener), and its application decodes every message.
//
// Figures: go test -run TestSubscriberHostilePeers -v ./pubsub/
func TestSubscriberHostilePeers(t *testing.T) {
	p := mustPub(t, pubsub.WithListen("tcp://127.0.0.1:0"))
	addr, err := p.Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("t"))
	connected(t, p, s, "t")
	tg := hp.Target{
		Name: "subscriber",
		Connect: func() (*hp.Conn, error) {
			l, err := hp.Listen(hp.ProtoPub)
			if err != nil {
				return nil, err
			}
			defer l.Close()
			if err := s.Dial(l.Addr()); err != nil {
				return nil, err
			}
			return l.Accept(10 * time.Second)
		},
		Kind:     wire.KindPublish,
		Topic:    "t",
		Legit:    legitLoop(p, s, 0),
		Stats:    func() spmesh.Stats { return s.Stats().Stats },
		Bodies:   true,
		MaxConns: 20, // each is a listener the subscriber dials (and keeps redialing)
	}
	hp.Run(t, tg, hp.StandardAttacks(tg, 8<<20))
}

// TestPublisherHostilePeers runs the hostile-peer suite against a
// Publisher over real TCP: hostile subscribers dial it, send it what a
// subscriber never sends, or never read, while it publishes 16 KiB
// messages to a legit subscriber.
//
// Figures: go test -run TestPublisherHostilePeers -v ./pubsub/
func TestPublisherHostilePeers(t *testing.T) {
	p := mustPub(t)
	addr, err := p.Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("t"))
	connected(t, p, s, "t")
	tg := hp.Target{
		Name:    "publisher",
		Connect: func() (*hp.Conn, error) { return hp.Dial(addr, hp.ProtoSub) },
		Kind:    wire.KindPublish,
		Topic:   "t",
		Legit:   legitLoop(p, s, 16<<10),
		Stats:   p.Stats,
		// 50, not 200: every publish goes to each never-reading
		// subscriber, and the legit p99 grows with them (see the log).
		MaxConns: 50,
		// Every hostile subscriber here never reads: the Publisher keeps
		// up to WithQueueLen (1024) messages for each, whatever their
		// size (16 MiB each at 16 KiB).
		Known: "a subscriber pipe's send queue counts messages, not bytes",
	}
	hp.Run(t, tg, hp.StandardAttacks(tg, 8<<20))
}
