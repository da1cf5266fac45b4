package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
	"go.nanomsg.org/mangos/v3"
)

// mangosSendQueue is the PUSH socket's own queue. The Pusher's queue (a
// channel, sized by WithQueueLen) is the one that matters: keeping the mangos
// one short keeps backpressure close to what WithQueueLen says. (It cannot be
// 0: the mangos PUSH sender then never runs.)
const mangosSendQueue = 16

// Pusher sends messages to connected [Puller]s, each message to one of them,
// spreading the load over the pullers that are ready. Delivery is at most
// once: a message queued or in flight when its puller goes away, or when the
// Pusher closes, is lost. Push blocks while no puller is connected or the
// send queue is full (backpressure). A Pusher is safe for concurrent use.
type Pusher struct {
	so          *sock.Socket
	nonBlocking bool

	q     chan *mangos.Message // accepted, not yet handed to mangos
	done  chan struct{}        // closed by Close
	ended chan struct{}        // closed when forward has returned

	// queued counts messages put on q (or about to be) that forward has
	// not yet handed to mangos. A Push that finds it 0 may hand its message
	// to mangos itself without overtaking one pushed before it.
	queued atomic.Int64

	closeOnce sync.Once

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
		q:           make(chan *mangos.Message, c.sock.SendQueue),
		done:        make(chan struct{}),
		ended:       make(chan struct{}),
		attached:    make(chan struct{}),
	}
	so, err := sock.Open(sock.Push, c.sock, sock.Wiring{Watch: spmesh.RolePuller})
	if err != nil {
		return nil, err
	}
	p.so = so
	// Pipes attached before the hook are already in so.Peers(), which is what
	// Push reads; the hook only wakes pushes waiting for the first puller.
	so.OnPipe(p.pipeEvent)
	if err := so.M.SetOption(mangos.OptionWriteQLen, mangosSendQueue); err != nil {
		so.Close()
		return nil, sock.Err(err)
	}
	go p.forward()
	return p, nil
}

func (p *Pusher) pipeEvent(ev mangos.PipeEvent, _ mangos.Pipe) {
	if ev != mangos.PipeEventAttached {
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
func (p *Pusher) PushHeader(ctx context.Context, h spmesh.Header, v any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.so.Closed() {
		return spmesh.ErrClosed
	}
	env := wire.Msg{Kind: wire.KindPush, ID: p.so.NewID(), Time: time.Now().UnixNano(), Header: h}
	m, err := p.so.Encode(&env, v)
	if err != nil {
		return err
	}
	if p.nonBlocking {
		if p.so.Peers() == 0 {
			m.Free()
			return p.so.NoPeers("no puller connected")
		}
		p.queued.Add(1)
		select {
		case p.q <- m:
			return nil
		default:
		}
		p.queued.Add(-1)
		m.Free()
		if p.so.Closed() {
			return spmesh.ErrClosed
		}
		return fmt.Errorf("%w: send queue full (pullers busy)", spmesh.ErrNoPeers)
	}
	if p.so.Peers() == 0 {
		if err := p.awaitPuller(ctx); err != nil {
			m.Free()
			return err
		}
	}
	if ctx.Done() == nil && p.queued.Load() == 0 {
		// Nothing can cancel this push and nothing queued before it is
		// still waiting for forward: hand the message to mangos here,
		// saving a goroutine hop. Blocking in SendMsg is then what the
		// select below would do; Close unblocks it.
		return p.send(m)
	}
	p.queued.Add(1)
	select {
	case p.q <- m: // the common case, without the full select
		return nil
	default:
	}
	select {
	case p.q <- m:
		return nil
	case <-ctx.Done():
		p.queued.Add(-1)
		m.Free()
		return ctx.Err()
	case <-p.done:
		p.queued.Add(-1)
		m.Free()
		return spmesh.ErrClosed
	}
}

// send hands m to mangos on the caller's goroutine.
func (p *Pusher) send(m *mangos.Message) error {
	if err := p.so.M.SendMsg(m); err != nil {
		m.Free()
		if errors.Is(err, mangos.ErrClosed) {
			return spmesh.ErrClosed
		}
		return sock.Err(err)
	}
	p.so.C.Sent.Add(1)
	return nil
}

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

// forward hands queued messages to the mangos socket, which gives each to
// the next ready puller. Blocking in mangos' SendMsg on Push's behalf, it
// lets a Push whose ctx can end wait on a channel with ctx and Close in the
// same select: exact deadlines and cancellation, no timer per message. (A
// Push whose ctx cannot end calls SendMsg itself: see PushHeader.)
func (p *Pusher) forward() {
	defer close(p.ended)
	for {
		var m *mangos.Message
		select {
		case m = <-p.q: // the common case under load, without the full select
		default:
			select {
			case m = <-p.q:
			case <-p.done:
				return
			}
		}
		err := p.so.M.SendMsg(m)
		p.queued.Add(-1)
		if err != nil {
			m.Free()
			p.so.C.Dropped.Add(1)
			if errors.Is(err, mangos.ErrClosed) {
				return
			}
			p.so.Settings.Logger.Warn("spmesh: pusher send", "err", sock.Err(err))
			continue
		}
		p.so.C.Sent.Add(1)
	}
}

// Stats returns the pusher's counters: Sent counts messages handed to the
// transport, Dropped those still queued when the Pusher closed.
func (p *Pusher) Stats() spmesh.Stats { return p.so.Stats() }

// Close closes the pusher at once; queued messages are dropped (and counted
// in Stats as Dropped). It is idempotent.
func (p *Pusher) Close() error {
	err := p.so.Close() // unblocks forward's SendMsg
	p.closeOnce.Do(func() {
		close(p.done)
		<-p.ended
		for {
			select {
			case m := <-p.q:
				m.Free()
				p.so.C.Dropped.Add(1)
			default:
				return
			}
		}
	})
	return err
}
