package pipeline

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
	"go.nanomsg.org/mangos/v3"
)

// Message is one message received by a [Puller].
type Message struct {
	Header spmesh.Header
	ID     string    // message id (hex), unique per message
	Time   time.Time // when it was pushed (sender's clock)
	Data   []byte    // the encoded body; Decode turns it into a value

	codec spmesh.Codec
}

// Decode decodes the body into v (a pointer) with the puller's codec.
func (m *Message) Decode(v any) error {
	if m == nil || m.codec == nil {
		return fmt.Errorf("%w: no message (a nil or zero Message)", spmesh.ErrDecode)
	}
	return m.codec.Unmarshal(m.Data, v)
}

// Decode decodes m's body as a T. m is a received [*Message]; any type of
// this package with a Decode method (such as the at-least-once half's jobs)
// works the same way.
func Decode[T any](m interface{ Decode(v any) error }) (T, error) {
	var v T
	err := m.Decode(&v)
	return v, err
}

// pooledMax is the largest frame whose buffer mangos recycles (its
// largest message pool); larger ones are handed to the application as is.
const pooledMax = 64 << 10

// Puller receives the messages that connected [Pusher]s send it, its share
// of their load. Messages from one pusher arrive in the order pushed.
// Frames that are not valid pipeline messages are discarded and counted as
// DecodeErrors in [Puller.Stats]. A Puller is safe for concurrent use.
type Puller struct {
	so    *sock.Socket
	codec spmesh.Codec

	ch    chan *Message
	done  chan struct{} // closed by Close: run stops at once
	ended chan struct{} // closed when run has returned

	closeOnce sync.Once
	draining  atomic.Bool
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
	so, err := sock.Open(sock.Pull, c.sock, sock.Wiring{Bind: spmesh.RolePuller})
	if err != nil {
		return nil, err
	}
	// No queue inside mangos: each connection hands its message straight to
	// run, so the channel below is the only buffer and Drain can deliver
	// everything accepted.
	if err := so.M.SetOption(mangos.OptionReadQLen, 0); err != nil {
		so.Close()
		return nil, sock.Err(err)
	}
	pl := &Puller{
		so: so, codec: c.sock.Codec,
		ch:    make(chan *Message, c.sock.RecvQueue),
		done:  make(chan struct{}),
		ended: make(chan struct{}),
	}
	go pl.run()
	return pl, nil
}

// Listen listens on addr for pushers to dial, returning the bound address.
func (pl *Puller) Listen(addr string) (string, error) { return pl.so.Listen(addr) }

// Dial connects to a pusher listening at addr, in the background.
func (pl *Puller) Dial(addr string) error { return pl.so.Dial(addr) }

func (pl *Puller) run() {
	defer close(pl.ended)
	defer close(pl.ch)
	var env wire.Msg
	for {
		m, err := pl.so.M.RecvMsg()
		if err != nil {
			if errors.Is(err, mangos.ErrClosed) {
				return
			}
			pl.so.Settings.Logger.Warn("spmesh: puller receive", "err", sock.Err(err))
			continue
		}
		if err := wire.Decode(m.Body, &env); err != nil || env.Kind != wire.KindPush {
			pl.so.C.DecodeErrors.Add(1)
			pl.so.Settings.Logger.Debug("spmesh: discarded bad frame", "err", err, "kind", env.Kind)
			m.Free()
			continue
		}
		msg := &Message{
			Header: env.Header, ID: env.ID.String(), Time: time.Unix(0, env.Time),
			Data: env.Body, codec: pl.codec,
		}
		if len(m.Body) <= pooledMax {
			// A small frame's buffer goes back to mangos' pool; the
			// application gets an exact-size copy of the body.
			msg.Data = append([]byte(nil), env.Body...)
			m.Free()
		}
		select {
		case pl.ch <- msg:
			pl.so.C.Received.Add(1)
		case <-pl.done:
			return
		}
	}
}

// Next returns the next message, waiting until one arrives or ctx ends.
func (pl *Puller) Next(ctx context.Context) (*Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if pl.so.Closed() && !pl.draining.Load() {
		return nil, spmesh.ErrClosed
	}
	select {
	case m, ok := <-pl.ch:
		if !ok {
			return nil, spmesh.ErrClosed
		}
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// C returns the puller's channel, for select. The puller owns it and closes
// it on Close (or when Drain has delivered everything).
func (pl *Puller) C() <-chan *Message { return pl.ch }

// All iterates over messages until ctx ends or the puller closes. A final
// error other than closing is yielded once.
func (pl *Puller) All(ctx context.Context) iter.Seq2[*Message, error] {
	return func(yield func(*Message, error) bool) {
		for {
			m, err := pl.Next(ctx)
			if errors.Is(err, spmesh.ErrClosed) {
				return
			}
			if !yield(m, err) || err != nil {
				return
			}
		}
	}
}

// Stats returns the puller's counters: Received counts messages queued for
// the application, DecodeErrors the frames discarded.
func (pl *Puller) Stats() spmesh.Stats { return pl.so.Stats() }

// Drain stops receiving (connections are closed and discovery withdrawn, so
// pushers send elsewhere), lets the application take every message already
// accepted (through Next, All or C), then closes. Messages in flight on the
// network are lost. If ctx ends first, the rest are dropped and ctx.Err()
// returned.
func (pl *Puller) Drain(ctx context.Context) error {
	if pl.so.Closed() {
		return spmesh.ErrClosed
	}
	pl.draining.Store(true)
	pl.so.Close() // stops intake; run closes pl.ch after its last message
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	var err error
	ended := false
	for err == nil && (!ended || len(pl.ch) > 0) {
		select {
		case <-pl.ended:
			ended = true
		case <-t.C:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	pl.draining.Store(false)
	pl.Close()
	return err
}

// Close closes the puller at once; messages not yet taken are dropped (and
// counted in Stats as Dropped). It is idempotent.
func (pl *Puller) Close() error {
	err := pl.so.Close()
	pl.closeOnce.Do(func() {
		close(pl.done)
		<-pl.ended
		for range pl.ch {
			pl.so.C.Dropped.Add(1)
		}
	})
	<-pl.ended
	return err
}
