package pipeline

import (
	"context"
	"iter"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
)

// Message is one message received by a [Puller]. A bare Puller
// ([WithBareFrames]) fills in only Data and Time (when it was received).
type Message struct {
	Header spmesh.Header
	ID     spmesh.ID // message id, unique per message
	Time   time.Time // when it was pushed (sender's clock)
	Data   []byte    // the encoded body; Decode turns it into a value

	codec spmesh.Codec
	ctx   context.Context // the tracer's, with WithTracer
}

// Context returns the context the puller's tracer gave the message: with
// [WithTracer], it carries the consumer span continuing the pusher's
// trace; start the spans of the message's processing from it. Without a
// tracer it is context.Background().
func (m *Message) Context() context.Context {
	if m == nil || m.ctx == nil {
		return context.Background()
	}
	return m.ctx
}

// Decode decodes the body into v (a pointer) with the puller's codec.
func (m *Message) Decode(v any) error {
	if m == nil {
		return sock.NoValue("Message")
	}
	return sock.DecodeBody(m.codec, m.Data, v, "Message")
}

// Puller receives the messages that connected [Pusher]s send it, its share
// of their load. Messages from one pusher arrive in the order pushed.
// Frames that are not valid pipeline messages are discarded and counted as
// DecodeErrors in [Puller.Stats] (a bare Puller takes every frame as a
// message). A Puller is safe for concurrent use.
type Puller struct {
	so    *sock.Socket
	codec spmesh.Codec

	in *sock.Inbox[*Message]
}

// NewPuller opens a puller. Give it an address with [WithListen] (or
// [Puller.Listen] later), or a registry with [WithDiscovery] (it then listens
// on the registry's host and advertises itself); it may also dial pushers
// that listen ([WithDial], [Puller.Dial]).
func NewPuller(opts ...Option) (*Puller, error) {
	c, err := newConfig(forPuller, opts)
	if err != nil {
		return nil, err
	}
	so, err := sock.Open(sock.Pull, c.sock, sock.Wiring{Bind: spmesh.RolePuller, Bare: c.bare})
	if err != nil {
		return nil, err
	}
	// No queue inside mangos: each connection hands its message straight to
	// run, so the channel below is the only buffer and Drain can deliver
	// everything accepted.
	if err := so.SetRecvQueue(0); err != nil {
		so.Close()
		return nil, err
	}
	pl := &Puller{so: so, codec: c.sock.Codec}
	if c.bare {
		// No envelope: the frame is the body, received now.
		pl.in = sock.NewBareInbox(so, func(body []byte) (*Message, bool) {
			return &Message{Time: time.Now(), Data: body, codec: pl.codec}, true
		})
		return pl, nil
	}
	pl.in = sock.NewInbox(so, wire.KindPush, func(env *wire.Msg) (*Message, bool) {
		m := &Message{
			Header: env.Header, ID: env.ID, Time: time.Unix(0, env.Time),
			Data: env.Body, codec: pl.codec,
		}
		if so.Settings.Traced() {
			// The consumer span ends here: the message is received.
			ctx, end := so.Settings.TraceReceive(context.Background(), spmesh.TracePush, so.Settings.Service, env.Header)
			end(nil)
			m.ctx = ctx
		}
		return m, true
	})
	return pl, nil
}

// Listen listens on addr for pushers to dial, returning the bound address.
func (pl *Puller) Listen(addr string) (string, error) { return pl.so.Listen(addr) }

// Addrs returns the addresses the puller listens on.
func (pl *Puller) Addrs() []string { return pl.so.Bound() }

// Dial connects to a pusher listening at addr, in the background.
func (pl *Puller) Dial(addr string) error { return pl.so.Dial(addr) }

// Next returns the next message, waiting until one arrives or ctx ends.
func (pl *Puller) Next(ctx context.Context) (*Message, error) { return pl.in.Next(ctx) }

// C returns the puller's channel, for select. The puller owns it and closes
// it on Close (or when Drain has delivered everything).
func (pl *Puller) C() <-chan *Message { return pl.in.C() }

// All iterates over messages until ctx ends or the puller closes. A final
// error other than closing is yielded once.
func (pl *Puller) All(ctx context.Context) iter.Seq2[*Message, error] { return pl.in.All(ctx) }

// Stats returns the puller's counters: Received counts messages queued for
// the application, DecodeErrors the frames discarded.
func (pl *Puller) Stats() spmesh.Stats { return pl.so.Stats() }

// Drain stops receiving (connections are closed and discovery withdrawn, so
// pushers send elsewhere), lets the application take every message already
// accepted (through Next, All or C), then closes. Messages in flight on the
// network are lost. If ctx ends first, the rest are dropped and ctx.Err()
// returned.
func (pl *Puller) Drain(ctx context.Context) error { return pl.in.Drain(ctx) }

// Close closes the puller at once; messages not yet taken are dropped (and
// counted in Stats as Dropped). It is idempotent.
func (pl *Puller) Close() error { return pl.in.Close() }
