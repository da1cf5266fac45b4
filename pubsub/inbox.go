package pubsub

import (
	"context"
	"errors"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
)

// newInbox is a Subscriber's receive side: sock's inbox reads the SUB
// socket; each frame (a plain message or a batch) is decoded, filtered by
// subscription and gap-counted here, then queued. When the queue is full
// the reader waits, so the SUB socket's queue fills and drops (oldest
// frames first): the drops show up as gaps.
func newInbox(s *Subscriber) *sock.Inbox[*Message] {
	if s.bare {
		return sock.NewFrameInbox(s.so, func(m *sock.Frame, emit func(*Message) bool) error {
			s.decodeBare(m, emit)
			if s.local > 0 {
				s.reportGaps()
			}
			return nil
		})
	}
	var dec frameDecoder
	return sock.NewFrameInbox(s.so, func(m *sock.Frame, emit func(*Message) bool) error {
		err := dec.decode(s, m, emit)
		if s.onGap != nil && (len(s.gaps) > 0 || s.local > 0) {
			s.reportGaps()
		}
		return err
	})
}

// batchChunk is how many messages of a batch are made at once (one
// allocation): a publisher's batches hold at most 256, and a hostile
// batch of millions of tiny entries costs no more than this many
// messages beyond what the queue holds, since emit waits while it is full.
const batchChunk = 256

// frameDecoder turns frames into messages, reusing its scratch state.
type frameDecoder struct {
	dec   wire.Decoder
	env   wire.Msg
	entry wire.Msg
}

// decode decodes frame m into messages for s (none when s does not want
// the topic) and hands them to emit, freeing m or handing its memory to
// the messages. A batch is checked whole before any of its messages is
// made: a bad entry fails the frame (one decode error) and none of it is
// delivered.
func (d *frameDecoder) decode(s *Subscriber, m *sock.Frame, emit func(*Message) bool) error {
	pooled := sock.Pooled(m)
	free := func() {
		if pooled {
			m.Free()
			pooled = false
		}
	}
	defer free()
	env := &d.env
	if err := d.dec.Decode(m.Body, env); err != nil {
		return err
	}
	if env.Kind != wire.KindPublish && env.Kind != wire.KindBatch && env.Kind != wire.KindTail {
		return errors.New("spmesh: not a pub/sub frame")
	}
	if !s.wants(env.Topic) {
		return nil
	}
	if env.Kind == wire.KindTail {
		s.tail(env.Pub, env.Topic, env.Seq)
		return nil
	}
	if env.Kind == wire.KindPublish {
		msgs := make([]Message, 1)
		s.message(&msgs[0], env)
		if pooled {
			msgs[0].Data = append([]byte(nil), env.Body...)
			free()
		}
		s.track(msgs)
		emit(&msgs[0])
		return nil
	}
	es := wire.NewEntries(env)
	n, err := es.Count() // checks every entry: Next cannot fail after it
	if err != nil {
		return err
	}
	if pooled {
		// One copy of the entries, so that the frame goes back to the
		// pool; the bodies alias the copy. (append, unlike make, does not
		// zero what it copies over.)
		env.Body = append([]byte(nil), env.Body...)
		free()
		es = wire.NewEntries(env)
	}
	for n > 0 {
		msgs := make([]Message, min(n, batchChunk))
		for i := range msgs {
			if _, err := es.Next(&d.entry); err != nil {
				return err
			}
			s.message(&msgs[i], &d.entry)
		}
		n -= len(msgs)
		s.track(msgs)
		for i := range msgs {
			if !emit(&msgs[i]) {
				// Closing: the rest of the frame goes with it.
				s.so.C.Drop(uint64(len(msgs)-i-1+n), &s.so.C.DroppedClosed)
				return nil
			}
		}
	}
	return nil
}

// message fills m, a zero Message, from env; m.Data aliases env.Body.
// Field by field, the zero ones left alone: a composite literal would be
// built aside and copied over with a write barrier for the whole struct.
func (s *Subscriber) message(m *Message, env *wire.Msg) {
	m.Topic = env.Topic
	if env.Header != nil {
		m.Header = env.Header
	}
	m.ID = env.ID
	m.Publisher, m.Seq = env.Pub, env.Seq
	m.Time = time.Unix(0, env.Time)
	m.Data = env.Body
	m.codec = s.codec
	if s.so.Settings.Traced() {
		// The consumer span ends here: the message is received; its
		// processing starts from m.Context().
		ctx, end := s.so.Settings.TraceReceive(context.Background(), spmesh.TracePublish, env.Topic, env.Header)
		end(nil)
		m.ctx = ctx
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
			ps, _ = recall(&s.pubs, &s.pubsOld, m.Publisher)
			if ps == nil {
				ps = &PublisherStats{}
				remember(&s.pubs, &s.pubsOld, m.Publisher, ps)
			}
			last = nil
		}
		ps.Received++
		if last == nil || m.Topic != key.topic {
			key = topicKey{m.Publisher, m.Topic}
			last, _ = recall(&s.last, &s.lastOld, key)
			if last == nil {
				last = new(uint64)
				remember(&s.last, &s.lastOld, key, last)
				*last = m.Seq
				continue
			}
		}
		if m.Seq > *last+1 {
			gap := m.Seq - *last - 1
			ps.Gaps += gap
			s.so.C.Drop(gap, &s.so.C.DroppedGap)
			if s.onGap != nil {
				s.gaps = append(s.gaps, Gap{Publisher: m.Publisher, Topic: m.Topic, Missed: gap, Seq: m.Seq})
			}
		}
		*last = m.Seq
	}
}

// tail applies a tail frame: the publisher's last sequence number on
// topic is seq. Messages up to seq not received are counted as a gap; a
// subscriber that had seen nothing of the topic starts counting after seq
// (it joined after those messages).
func (s *Subscriber) tail(pub uint64, topic string, seq uint64) {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	ps, _ := recall(&s.pubs, &s.pubsOld, pub)
	if ps == nil {
		ps = &PublisherStats{}
		remember(&s.pubs, &s.pubsOld, pub, ps)
	}
	key := topicKey{pub, topic}
	last, _ := recall(&s.last, &s.lastOld, key)
	if last == nil {
		last = new(uint64)
		*last = seq
		remember(&s.last, &s.lastOld, key, last)
		return
	}
	if seq > *last {
		gap := seq - *last
		ps.Gaps += gap
		s.so.C.Drop(gap, &s.so.C.DroppedGap)
		*last = seq
		if s.onGap != nil {
			s.gaps = append(s.gaps, Gap{Publisher: pub, Topic: topic, Missed: gap, Seq: seq, Tail: true})
		}
	}
}
