package pubsub

import (
	"context"
	"sync"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
)

// Publisher sends messages on topics to every connected [Subscriber]. It
// never blocks on a slow subscriber: that subscriber's messages are dropped
// and the subscriber sees the gap. A Publisher is safe for concurrent use.
type Publisher struct {
	so *sock.Socket
	id uint64

	mu   sync.Mutex        // orders sequence numbers with sends
	seqs map[string]uint64 // per topic
}

// NewPublisher opens a publisher. Give it addresses with [WithListen] or
// [WithDial] (or call [Publisher.Listen] and [Publisher.Dial] later), or a
// registry with [WithDiscovery].
func NewPublisher(opts ...Option) (*Publisher, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	so, err := sock.Open(sock.Pub, c.sock, sock.Wiring{Bind: spmesh.RolePublisher})
	if err != nil {
		return nil, err
	}
	return &Publisher{so: so, id: sock.RandomUint64(), seqs: map[string]uint64{}}, nil
}

// ID is the publisher's random id, as subscribers see it in [Message.Publisher].
func (p *Publisher) ID() uint64 { return p.id }

// Listen listens on addr and returns the bound address (port 0 resolved).
func (p *Publisher) Listen(addr string) (string, error) { return p.so.Listen(addr) }

// Dial connects to a subscriber listening at addr, in the background.
func (p *Publisher) Dial(addr string) error { return p.so.Dial(addr) }

// Publish encodes v with the codec and sends it on topic. Topics are
// dot-separated tokens without wildcards, e.g. "images.ready".
func (p *Publisher) Publish(ctx context.Context, topic string, v any) error {
	return p.PublishHeader(ctx, topic, nil, v)
}

// PublishHeader is [Publisher.Publish] with headers that travel with the message.
func (p *Publisher) PublishHeader(ctx context.Context, topic string, h spmesh.Header, v any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.so.Closed() {
		return spmesh.ErrClosed
	}
	if err := checkTopic(topic); err != nil {
		return err
	}
	env := wire.Msg{Kind: wire.KindPublish, Topic: topic, ID: p.so.NewID(), Time: time.Now().UnixNano(), Header: h, Pub: p.id}
	p.mu.Lock()
	env.Seq = p.seqs[topic] + 1
	m, err := p.so.Encode(&env, v)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	err = p.so.M.SendMsg(m)
	if err == nil {
		p.seqs[topic] = env.Seq
	}
	p.mu.Unlock()
	if err != nil {
		return sock.Err(err)
	}
	p.so.C.Sent.Add(1)
	return nil
}

// Stats returns the publisher's counters.
func (p *Publisher) Stats() spmesh.Stats { return p.so.Stats() }

// Close closes the publisher at once; messages still queued are dropped.
// It is idempotent.
func (p *Publisher) Close() error { return p.so.Close() }
