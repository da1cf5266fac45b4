package pubsub

import (
	"context"
	"errors"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
	"go.nanomsg.org/mangos/v3"
)

// inbox is a Subscriber's receive side: one goroutine reads the SUB socket,
// decodes each frame (a plain message or a batch), discards and counts the
// frames that fail, filters by subscription, counts sequence gaps, and
// queues the messages on a channel it owns. When the channel is full the
// goroutine waits, so the SUB socket's queue fills and drops (oldest
// frames first): the drops show up as gaps.
type inbox struct {
	s       *Subscriber
	ch      chan *Message
	done    chan struct{} // closed by Close: the reader stops at once
	ended   chan struct{} // closed when the reader has returned
	once    sync.Once
	drainMu sync.Mutex
	drain   atomic.Bool
}

// pooledMax is the largest frame whose buffer mangos recycles: the bodies
// of a smaller frame are copied out of it and the frame freed, a larger
// frame is handed over as is.
const pooledMax = 64 << 10

func newInbox(s *Subscriber) *inbox {
	in := &inbox{
		s:     s,
		ch:    make(chan *Message, s.so.Settings.RecvQueue),
		done:  make(chan struct{}),
		ended: make(chan struct{}),
	}
	go in.run()
	return in
}

func (in *inbox) run() {
	defer close(in.ended)
	defer close(in.ch)
	so := in.s.so
	var dec frameDecoder
	for {
		m, err := so.M.RecvMsg()
		if err != nil {
			if errors.Is(err, mangos.ErrClosed) {
				return
			}
			so.Settings.Logger.Warn("spmesh: receive", "err", sock.Err(err))
			continue
		}
		msgs, err := dec.decode(in.s, m)
		if err != nil {
			so.C.DecodeErrors.Add(1)
			so.Settings.Logger.Debug("spmesh: discarded bad frame", "err", err)
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		in.s.track(msgs)
		for i := range msgs {
			select {
			case in.ch <- &msgs[i]: // the common case, without a full select
				continue
			default:
			}
			select {
			case in.ch <- &msgs[i]:
			case <-in.done:
				so.C.Received.Add(uint64(i))
				so.C.Dropped.Add(uint64(len(msgs) - i))
				return
			}
		}
		so.C.Received.Add(uint64(len(msgs)))
	}
}

// frameDecoder turns frames into messages, reusing its scratch state.
type frameDecoder struct {
	dec   wire.Decoder
	env   wire.Msg
	entry wire.Msg
}

// decode decodes frame m (and frees it, or hands its memory to the
// messages) into messages for s: none when s does not want the topic.
func (d *frameDecoder) decode(s *Subscriber, m *mangos.Message) ([]Message, error) {
	pooled := len(m.Body) <= pooledMax
	defer func() {
		if pooled {
			m.Free()
		}
	}()
	env := &d.env
	if err := d.dec.Decode(m.Body, env); err != nil {
		return nil, err
	}
	if env.Kind != wire.KindPublish && env.Kind != wire.KindBatch {
		return nil, errors.New("spmesh: not a pub/sub frame")
	}
	if !s.wants(env.Topic) {
		return nil, nil
	}
	if env.Kind == wire.KindPublish {
		msgs := make([]Message, 1)
		s.message(&msgs[0], env)
		if pooled {
			msgs[0].Data = append([]byte(nil), env.Body...)
		}
		return msgs, nil
	}
	es := wire.NewEntries(env)
	n, err := es.Count()
	if err != nil {
		return nil, err
	}
	if pooled {
		// One copy of the entries, so that the frame goes back to the
		// pool; the bodies alias the copy. (append, unlike make, does not
		// zero what it copies over.)
		env.Body = append([]byte(nil), env.Body...)
		es = wire.NewEntries(env)
	}
	msgs := make([]Message, n)
	for i := range msgs {
		if _, err := es.Next(&d.entry); err != nil {
			return nil, err
		}
		s.message(&msgs[i], &d.entry)
	}
	return msgs, nil
}

// message fills m from env; m.Data aliases env.Body.
func (s *Subscriber) message(m *Message, env *wire.Msg) {
	*m = Message{
		Topic: env.Topic, Header: env.Header, ID: env.ID,
		Publisher: env.Pub, Seq: env.Seq, Time: time.Unix(0, env.Time),
		Data: env.Body, codec: s.codec,
	}
}

func (s *Subscriber) wants(topic string) bool {
	subs := *s.subs.Load()
	for i := range subs {
		if subs[i].match(topic) {
			return true
		}
	}
	return false
}

// track updates the sequence table and counts gaps, under one lock for the
// whole frame.
func (s *Subscriber) track(msgs []Message) {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	var ps *PublisherStats
	var last *uint64
	var key topicKey
	for i := range msgs {
		m := &msgs[i]
		if ps == nil || m.Publisher != key.pub {
			ps = s.pubs[m.Publisher]
			if ps == nil {
				if len(s.pubs) >= maxTracked {
					clear(s.pubs)
					clear(s.last)
				}
				ps = &PublisherStats{}
				s.pubs[m.Publisher] = ps
			}
			last = nil
		}
		ps.Received++
		if last == nil || m.Topic != key.topic {
			key = topicKey{m.Publisher, m.Topic}
			last = s.last[key]
			if last == nil {
				if len(s.last) >= maxTracked {
					clear(s.last)
				}
				last = new(uint64)
				s.last[key] = last
				*last = m.Seq
				continue
			}
		}
		if m.Seq > *last+1 {
			gap := m.Seq - *last - 1
			ps.Gaps += gap
			s.so.C.Dropped.Add(gap)
		}
		*last = m.Seq
	}
}

// Next returns the next message, waiting until one arrives or ctx ends.
func (in *inbox) Next(ctx context.Context) (*Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if in.s.so.Closed() && !in.drain.Load() {
		return nil, spmesh.ErrClosed
	}
	select {
	case v, ok := <-in.ch:
		if !ok {
			return nil, spmesh.ErrClosed
		}
		return v, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// All iterates until ctx ends or the inbox closes; a final error other than
// closing is yielded once.
func (in *inbox) All(ctx context.Context) iter.Seq2[*Message, error] {
	return func(yield func(*Message, error) bool) {
		for {
			v, err := in.Next(ctx)
			if errors.Is(err, spmesh.ErrClosed) {
				return
			}
			if !yield(v, err) || err != nil {
				return
			}
		}
	}
}

// Drain closes the socket (no more intake; advertisements withdrawn), waits
// until the application has taken every queued message, then closes. If ctx
// ends first the rest are dropped and ctx.Err() returned.
func (in *inbox) Drain(ctx context.Context) error {
	in.drainMu.Lock()
	defer in.drainMu.Unlock()
	so := in.s.so
	if so.Closed() {
		return spmesh.ErrClosed
	}
	in.drain.Store(true)
	so.Close() // the reader returns after its last frame and closes ch
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	var err error
	ended := false
	for err == nil && (!ended || len(in.ch) > 0) {
		select {
		case <-in.ended:
			ended = true
		case <-t.C:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	in.drain.Store(false)
	in.Close()
	return err
}

// Close closes the socket and stops the reader at once; queued messages are
// dropped and counted as Dropped. It is idempotent.
func (in *inbox) Close() error {
	err := in.s.so.Close()
	in.once.Do(func() {
		close(in.done)
		<-in.ended
		for range in.ch {
			in.s.so.C.Dropped.Add(1)
		}
	})
	<-in.ended
	return err
}

// C is the inbox's channel; it is closed on Close, or by Drain once empty.
func (in *inbox) C() <-chan *Message { return in.ch }
