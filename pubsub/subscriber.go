package pubsub

import (
	"context"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
)

// Message is one received publication. Messages that arrived in one batch
// frame share its memory: holding one keeps the batch's bodies (at most
// 64 KiB) alive; copy Data to keep a few messages of a burst for long.
type Message struct {
	Topic     string
	Header    spmesh.Header
	ID        spmesh.ID // message id; stable, for de-duplication
	Publisher uint64    // the sending Publisher's id
	Seq       uint64    // per publisher and topic, from 1
	Time      time.Time // when the publisher sent it (its clock; one reading per batch)
	Data      []byte    // the encoded body; Decode turns it into a value

	codec spmesh.Codec
	ctx   context.Context // the tracer's, with WithTracer
}

// Context returns the context the subscriber's tracer gave the message:
// with [WithTracer], it carries the consumer span continuing the
// publisher's trace; start the spans of the message's processing from it.
// Without a tracer it is context.Background().
func (m *Message) Context() context.Context {
	if m == nil || m.ctx == nil {
		return context.Background()
	}
	return m.ctx
}

// Decode decodes the body into v (a pointer) with the subscriber's codec.
func (m *Message) Decode(v any) error {
	if m == nil {
		return sock.NoValue("Message")
	}
	return sock.DecodeBody(m.codec, m.Data, v, "Message")
}

// PublisherStats counts what one subscriber saw of one publisher.
type PublisherStats struct {
	Received uint64 // messages delivered from this publisher
	// Gaps counts the messages the application never got: holes in the
	// sequence numbers (Stats.DroppedGap) and messages its own full queue
	// dropped (Stats.DroppedQueueFull).
	Gaps uint64
}

// SubscriberStats are a subscriber's counters, with the per-publisher view.
type SubscriberStats struct {
	spmesh.Stats
	Publishers map[uint64]PublisherStats
}

type topicKey struct {
	pub   uint64
	topic string
}

// Subscriber receives the messages of its subscriptions from every connected
// [Publisher]. Messages arrive in order per publisher; when the subscriber
// falls behind its queue, messages are dropped and counted as per-publisher
// sequence gaps in [Subscriber.Stats]. A Subscriber is safe for concurrent use.
type Subscriber struct {
	so    *sock.Socket
	codec spmesh.Codec
	bare  bool // WithBareFrames: subscriptions are byte prefixes (bare.go)

	subMu sync.Mutex
	subs  atomic.Pointer[[]pattern] // copy on write, read per frame
	in    *sock.Inbox[*Message]

	// Sequence table and per-publisher counters, each bounded by
	// maxTracked: current and previous generation (see track.go).
	seqMu         sync.Mutex
	last, lastOld map[topicKey]*uint64 // last sequence number per publisher and topic
	pubs, pubsOld map[uint64]*PublisherStats

	// WithGapHandler: gaps found while decoding a frame, reported after it
	// (reader goroutine only).
	onGap    func(Gap)
	gaps     []Gap
	local    uint64 // messages the queue dropped during this frame
	localKey topicKey
}

// NewSubscriber opens a subscriber. It receives nothing until subscribed
// ([WithSubscribe] or [Subscriber.Subscribe]).
func NewSubscriber(opts ...Option) (*Subscriber, error) {
	c, err := newConfig(forSubscriber, opts)
	if err != nil {
		return nil, err
	}
	proto := sock.Sub
	if c.hold > 0 {
		proto = sock.SubHold
	}
	// The first subscriptions are in place before any connection: the
	// first interest frame a publisher gets holds them.
	before := func(so *sock.Socket) error {
		if c.bare {
			if err := so.Quiet(); err != nil {
				return err
			}
		}
		for _, raw := range c.subs {
			p, err := parseSub(raw, c.bare)
			if err != nil {
				return err
			}
			if err := so.Subscribe(p.prefix); err != nil {
				return err
			}
		}
		return nil
	}
	so, err := sock.Open(proto, c.sock, sock.Wiring{Watch: spmesh.RolePublisher, Before: before, Bare: c.bare})
	if err != nil {
		return nil, err
	}
	s := &Subscriber{
		so: so, codec: c.sock.Codec, onGap: c.gap, bare: c.bare,
		last: map[topicKey]*uint64{},
		pubs: map[uint64]*PublisherStats{},
	}
	s.subs.Store(&[]pattern{})
	if err := s.Subscribe(c.subs...); err != nil {
		so.Close()
		return nil, err
	}
	s.in = newInbox(s)
	s.in.OnDrop(s.dropped)
	return s, nil
}

// dropped moves a message the queue dropped to make room (see WithQueueLen,
// WithQueueBytes) from its publisher's Received to its Gaps.
func (s *Subscriber) dropped(m *Message) {
	s.seqMu.Lock()
	if ps, _ := recall(&s.pubs, &s.pubsOld, m.Publisher); ps != nil && ps.Received > 0 {
		ps.Received--
		ps.Gaps++
	}
	s.seqMu.Unlock()
	if s.onGap != nil {
		s.local++
		s.localKey = topicKey{m.Publisher, m.Topic}
	}
}

// reportGaps calls the gap handler for the gaps found in the frame just
// decoded (reader goroutine).
func (s *Subscriber) reportGaps() {
	if s.local > 0 {
		s.gaps = append(s.gaps, Gap{Publisher: s.localKey.pub, Topic: s.localKey.topic, Missed: s.local, Local: true})
		s.local = 0
	}
	for i := range s.gaps {
		s.onGap(s.gaps[i])
		s.gaps[i] = Gap{}
	}
	s.gaps = s.gaps[:0]
}

// Listen listens on addr for publishers to dial, returning the bound address.
func (s *Subscriber) Listen(addr string) (string, error) { return s.so.Listen(addr) }

// Addrs returns the addresses the subscriber listens on.
func (s *Subscriber) Addrs() []string { return s.so.Bound() }

// Dial connects to a publisher listening at addr, in the background.
func (s *Subscriber) Dial(addr string) error { return s.so.Dial(addr) }

// Subscribe adds subscription patterns: "images.ready" (that topic only),
// "images.*" (one token), "images.>" (one or more tokens), ">" (everything).
// Subscribing twice to a pattern is a no-op. The publishers already
// connected learn of it about a round trip later (see the package doc,
// "Topics").
func (s *Subscriber) Subscribe(patterns ...string) error {
	if s.so.Closed() {
		return spmesh.ErrClosed
	}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	cur := *s.subs.Load()
	next := append([]pattern(nil), cur...)
outer:
	for _, raw := range patterns {
		p, err := parseSub(raw, s.bare)
		if err != nil {
			return err
		}
		for _, q := range next {
			if q.raw == raw {
				continue outer
			}
		}
		if err := s.so.Subscribe(p.prefix); err != nil {
			return err
		}
		next = append(next, p)
	}
	s.subs.Store(&next)
	return nil
}

// Unsubscribe removes a subscription pattern; messages already queued for it
// may still be delivered.
func (s *Subscriber) Unsubscribe(raw string) error {
	if s.so.Closed() {
		return spmesh.ErrClosed
	}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	cur := *s.subs.Load()
	next := make([]pattern, 0, len(cur))
	var gone *pattern
	for i := range cur {
		if cur[i].raw == raw {
			gone = &cur[i]
			continue
		}
		next = append(next, cur[i])
	}
	if gone == nil {
		return fmt.Errorf("%w: not subscribed to %q", spmesh.ErrInvalidTopic, raw)
	}
	// Keep the mangos prefix while another pattern still uses it.
	shared := false
	for _, q := range next {
		if string(q.prefix) == string(gone.prefix) {
			shared = true
		}
	}
	if !shared {
		if err := s.so.Unsubscribe(gone.prefix); err != nil {
			return err
		}
	}
	s.subs.Store(&next)
	return nil
}

// Next returns the next message, waiting until one arrives or ctx ends.
func (s *Subscriber) Next(ctx context.Context) (*Message, error) { return s.in.Next(ctx) }

// C returns the subscriber's channel, for select. The subscriber owns it and
// closes it on Close (or when Drain has delivered everything).
func (s *Subscriber) C() <-chan *Message { return s.in.C() }

// All iterates over messages until ctx ends or the subscriber closes. A
// final error other than closing is yielded once.
func (s *Subscriber) All(ctx context.Context) iter.Seq2[*Message, error] { return s.in.All(ctx) }

// Stats returns the counters: Dropped is the sum of sequence gaps over all
// publishers.
func (s *Subscriber) Stats() SubscriberStats {
	st := SubscriberStats{Stats: s.so.Stats(), Publishers: map[uint64]PublisherStats{}}
	if s.bare {
		// No sequence numbers to reveal what the socket's frame queue
		// dropped: count it directly.
		d := sock.SubDrops(s.so)
		st.Dropped += d
		st.DroppedQueueFull += d
	}
	s.seqMu.Lock()
	for id, ps := range s.pubs {
		st.Publishers[id] = *ps
	}
	for id, ps := range s.pubsOld {
		st.Publishers[id] = *ps
	}
	s.seqMu.Unlock()
	return st
}

// Drain stops receiving, lets the application take every message already
// received (through Next, All or C), then closes. If ctx ends first, the
// remaining messages are dropped and ctx.Err() returned.
func (s *Subscriber) Drain(ctx context.Context) error { return s.in.Drain(ctx) }

// Close closes the subscriber at once; queued messages are dropped. It is
// idempotent.
func (s *Subscriber) Close() error { return s.in.Close() }
