package pubsub

import (
	"fmt"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
)

// Bare frames (WithBareFrames): the topic's bytes followed by the body's,
// no envelope, as NNG and nanomsg PUB/SUB programs send them.

var errBareHeaders = fmt.Errorf("%w: headers on a bare publisher: bare frames carry none (WithBareFrames)", spmesh.ErrInvalidOption)

// publishBare sends one bare frame: topic then v encoded by the codec, or
// data as is when raw. No sequence number, no batching: every message is
// its own frame, handed to the fan-out at once.
func (p *Publisher) publishBare(topic string, h spmesh.Header, v any, data []byte, raw bool) error {
	if len(h) > 0 {
		return errBareHeaders
	}
	if p.so.Closed() {
		return spmesh.ErrClosed
	}
	if !p.bareCalls.Enter() {
		return errDraining
	}
	defer p.bareCalls.Done(1)
	var m *sock.Frame
	if raw {
		n := len(topic) + len(data)
		if err := p.so.CheckSize(n); err != nil {
			return err // counted
		}
		m = sock.NewFrame(n)
		m.Body = append(append(m.Body[:0], topic...), data...)
	} else {
		var err error
		if m, err = p.so.EncodePrefixed(p.codec, topic, v); err != nil {
			return err
		}
	}
	if err := p.pub.Send(m, 1); err != nil {
		return sock.Err(err)
	}
	p.so.C.Sent.Add(1)
	return nil
}

// parseSub parses a subscription: a NATS-style pattern, or with bare
// frames a byte prefix taken as is.
func parseSub(s string, bare bool) (pattern, error) {
	if !bare {
		return parsePattern(s)
	}
	return pattern{raw: s, prefix: []byte(s)}, nil
}

// decodeBare delivers bare frame m as one message: Topic is the longest
// subscription that prefixes the frame, Data the bytes after it. A frame
// no subscription prefixes (unsubscribed meanwhile) is dropped
// uncounted, as the socket's prefix filter does.
func (s *Subscriber) decodeBare(m *sock.Frame, emit func(*Message) bool) {
	subs := *s.subs.Load()
	best := -1
	for i := range subs {
		pre := subs[i].prefix
		if (best < 0 || len(pre) > len(subs[best].prefix)) && len(m.Body) >= len(pre) && string(m.Body[:len(pre)]) == string(pre) {
			best = i
		}
	}
	if best < 0 {
		m.Free()
		return
	}
	msg := &Message{Topic: subs[best].raw, Data: m.Body[len(subs[best].prefix):], codec: s.codec}
	if sock.Pooled(m) {
		// The frame goes back to the pool: the body moves to its own memory.
		msg.Data = append([]byte(nil), msg.Data...)
		m.Free()
	}
	emit(msg)
}
