package pipeline

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
)

// Pusher sends messages to connected [Puller]s, each message to one of them,
// round robin over the pullers whose send queue has room: equal pullers get
// equal shares, and a puller that falls behind (its queue full) is skipped
// until it catches up. Delivery is at most once: a message queued or in
// flight when its puller goes away, or when the Pusher closes, is lost
// (counted as Dropped). Push blocks while no puller is connected or every
// puller's send queue is full (backpressure). A Pusher is safe for
// concurrent use.
type Pusher struct {
	so          *sock.Socket
	spread      *sock.Spread
	nonBlocking bool
	bare        bool // WithBareFrames: the body alone, no envelope

	done      chan struct{} // closed by Close
	closeOnce sync.Once
	calls     sock.Pending // Push calls in progress; stopped by Drain

	mu       sync.Mutex
	attached chan struct{} // closed and replaced each time a puller connects
}

// NewPusher opens a pusher. Give it pullers with [WithDial] (or
// [Pusher.Dial] later), or a registry with [WithDiscovery]; it may also
// listen for pullers that dial it ([WithListen], [Pusher.Listen]).
func NewPusher(opts ...Option) (*Pusher, error) {
	c, err := newConfig(forPusher, opts)
	if err != nil {
		return nil, err
	}
	p := &Pusher{
		nonBlocking: c.pusher.nonBlocking,
		bare:        c.bare,
		done:        make(chan struct{}),
		attached:    make(chan struct{}),
	}
	so, err := sock.Open(sock.Push, c.sock, sock.Wiring{Watch: spmesh.RolePuller, Bare: c.bare})
	if err != nil {
		return nil, err
	}
	p.so = so
	p.spread = sock.PushOf(so)
	// Pipes attached before the hook are already in so.Peers(), which is what
	// Push reads; the hook only wakes pushes waiting for the first puller.
	so.OnPipe(p.pipeEvent)
	return p, nil
}

func (p *Pusher) pipeEvent(ev sock.PipeEvent) {
	if ev != sock.PipeAttached {
		return
	}
	p.mu.Lock()
	close(p.attached)
	p.attached = make(chan struct{})
	p.mu.Unlock()
}

// Listen listens on addr for pullers to dial, returning the bound address.
func (p *Pusher) Listen(addr string) (string, error) { return p.so.Listen(addr) }

// Dial connects to a puller listening at addr, in the background.
func (p *Pusher) Dial(addr string) error { return p.so.Dial(addr) }

// Push encodes v with the codec and queues it for one puller. It blocks
// while no puller is connected or the send queue is full, until ctx ends
// (then it returns ctx.Err()); with [WithNonBlocking] it fails at once with
// an error wrapping [spmesh.ErrNoPeers] instead. A nil error means the
// message was queued, not that a puller received it.
func (p *Pusher) Push(ctx context.Context, v any) error {
	return p.PushHeader(ctx, nil, v)
}

// PushHeader is [Pusher.Push] with headers that travel with the message.
// A bare Pusher ([WithBareFrames]) carries none: non-empty headers fail
// with an error wrapping [spmesh.ErrInvalidOption].
func (p *Pusher) PushHeader(ctx context.Context, h spmesh.Header, v any) error {
	if p.so.Settings.Traced() && !p.bare {
		// One producer span, ended once the message is queued.
		tctx, th, end := p.so.Settings.TraceSend(ctx, spmesh.TracePush, p.so.Settings.Service, h)
		err := p.push(tctx, th, v)
		end(err)
		return err
	}
	return p.push(ctx, h, v)
}

// push queues one message with headers h.
func (p *Pusher) push(ctx context.Context, h spmesh.Header, v any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.so.Closed() {
		return spmesh.ErrClosed
	}
	if !p.calls.Enter() {
		return errDraining
	}
	defer p.calls.Done(1)
	m, err := p.encode(h, v)
	if err != nil {
		return err
	}
	if p.nonBlocking {
		if p.so.Peers() == 0 {
			m.Free()
			return p.so.NoPeers("no puller connected")
		}
		if err := p.spread.Send(ctx, p.done, m, false); err != nil {
			m.Free()
			if sock.IsClosed(err) {
				return spmesh.ErrClosed
			}
			return fmt.Errorf("%w: send queue full (pullers busy)", spmesh.ErrNoPeers)
		}
		return nil
	}
	if p.so.Peers() == 0 {
		if err := p.awaitPuller(ctx); err != nil {
			m.Free()
			return err
		}
	}
	if err := p.spread.Send(ctx, p.done, m, true); err != nil {
		m.Free()
		if sock.IsClosed(err) {
			return spmesh.ErrClosed
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return sock.Err(err)
	}
	return nil
}

// encode builds the frame of one message: the envelope and the body, or
// the body alone when bare.
func (p *Pusher) encode(h spmesh.Header, v any) (*sock.Frame, error) {
	if p.bare {
		if len(h) > 0 {
			return nil, errBareHeaders
		}
		return p.so.Encode(nil, v)
	}
	env := wire.Msg{Kind: wire.KindPush, ID: p.so.NewID(), Time: time.Now().UnixNano(), Header: h}
	return p.so.Encode(&env, v)
}

var errBareHeaders = fmt.Errorf("%w: headers on a bare pusher: bare frames carry none (WithBareFrames)", spmesh.ErrInvalidOption)

// awaitPuller waits until a puller is connected.
func (p *Pusher) awaitPuller(ctx context.Context) error {
	for {
		// Take the channel before reading the count: a puller attaching in
		// between is either counted or closes this channel.
		p.mu.Lock()
		attached := p.attached
		p.mu.Unlock()
		if p.so.Peers() > 0 {
			return nil
		}
		select {
		case <-attached:
		case <-ctx.Done():
			return p.so.Explain(ctx.Err())
		case <-p.done:
			return spmesh.ErrClosed
		}
	}
}

// Stats returns the pusher's counters: Sent counts messages handed to the
// transport, Dropped those lost from a puller's send queue (the puller went
// away, or the Pusher closed).
func (p *Pusher) Stats() spmesh.Stats { return p.so.Stats() }

// errDraining is Push's error once Drain was called.
var errDraining = fmt.Errorf("%w: pusher draining", spmesh.ErrClosed)

// Addrs returns the addresses the pusher listens on.
func (p *Pusher) Addrs() []string { return p.so.Bound() }

// Drain closes the pusher gracefully: Push refuses new messages at once
// (an error wrapping [spmesh.ErrClosed]); the Push calls already running
// go on (one waiting for a puller or for room still waits, until its own
// ctx ends); then Drain waits until every queued message has been written
// to its puller's connection, and closes. A message queued for a puller
// that goes away meanwhile is dropped (counted), as ever. If ctx ends
// first, Drain closes at once: what is still queued is dropped and counted
// in Stats as Dropped (and DroppedClosed), running Push calls return
// [spmesh.ErrClosed], and Drain returns ctx's error. Concurrent calls all
// wait; once closed (by Close or a Drain), Drain returns
// [spmesh.ErrClosed], as on every socket type.
func (p *Pusher) Drain(ctx context.Context) error {
	if p.so.Closed() {
		return spmesh.ErrClosed
	}
	p.so.C.Draining.Store(true)
	p.calls.Stop()
	err := p.calls.Wait(ctx)
	if err == nil {
		err = p.spread.Flushed(ctx)
	}
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close closes the pusher at once; queued messages are dropped (and counted
// in Stats as Dropped). It is idempotent.
func (p *Pusher) Close() error {
	err := p.so.Close() // closes the connections: their senders stop
	p.closeOnce.Do(func() {
		close(p.done)
		p.spread.Wait()
	})
	return err
}
