package reqrep

import (
	"context"
	"sync"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
)

// ReplierStats are a replier's counters. Received counts requests handed to
// the handler, Sent the replies (error replies included), DecodeErrors the
// frames that were not requests (each answered with an error reply), and
// Dropped the requests not handed to the handler: oversized
// (DroppedTooLarge), expired on arrival (DroppedExpired; both answered
// with an error), or caught by Drain (DroppedClosed; resent by their
// callers), and the replies a requester did not take in time
// (DroppedSendTimeout).
type ReplierStats struct {
	spmesh.Stats
	// InFlight is the number of handlers running.
	InFlight int
	// HandlerErrors counts handler errors (panics included).
	HandlerErrors uint64
	// Panics counts recovered handler panics.
	Panics uint64
	// Abandoned counts handlers still running when Close stopped waiting
	// for them (they ignored their ctx for [HandlerGrace]).
	Abandoned uint64
}

// HandlerGrace is how long Close waits for running handlers to return once
// their ctx is cancelled. A handler still running then goes on in the
// background (its reply is never sent); it is logged and counted in
// [ReplierStats].Abandoned.
const HandlerGrace = sock.HandlerGrace

// Replier answers requests with a [Handler], running up to its concurrency
// ([WithConcurrency]) handlers at once, each on its own mangos context.
// A Replier is safe for concurrent use.
type Replier struct {
	so    *sock.Socket
	srv   *sock.Server
	h     Handler
	codec spmesh.Codec
	fr    sock.Frames
	pool  sync.Pool // *Request
}

// NewReplier opens a replier serving h. Give it addresses with [WithListen]
// or [WithDial] (or call [Replier.Listen] and [Replier.Dial] later), or a
// registry with [WithDiscovery].
// A nil h (also a nil HandlerFunc) is refused with an error wrapping
// [spmesh.ErrInvalidOption].
func NewReplier(h Handler, opts ...Option) (*Replier, error) {
	if sock.NilFunc(h) {
		return nil, sock.Invalid("nil handler")
	}
	c, err := newConfig(forReplier, opts)
	if err != nil {
		return nil, err
	}
	so, err := sock.Open(sock.Rep, c.sock, sock.Wiring{Bind: spmesh.RoleReplier, Bare: c.bare})
	if err != nil {
		return nil, err
	}
	r := &Replier{so: so, h: h, codec: c.sock.Codec, fr: framesFor(&c)}
	r.pool.New = func() any { return &Request{} }
	if r.srv, err = sock.NewServer(so, c.concurrency, r.handle); err != nil {
		return nil, err
	}
	r.srv.Credit = uint32(c.credit)
	r.srv.Start()
	return r, nil
}

// Listen listens on addr for requesters to dial, returning the bound address
// (port 0 resolved).
func (r *Replier) Listen(addr string) (string, error) { return r.so.Listen(addr) }

// Dial connects to a requester listening at addr, in the background.
func (r *Replier) Dial(addr string) error { return r.so.Dial(addr) }

// Addrs returns the addresses the replier listens on.
func (r *Replier) Addrs() []string { return r.so.Bound() }

// handle answers one request frame.
func (r *Replier) handle(base context.Context, m *sock.Frame) *sock.Frame {
	if r.fr.Bare {
		return r.handleBare(base, m)
	}
	return r.srv.ServeEnvelope(base, m, r.fr, r.serve)
}

// serve runs the handler on one decoded request.
func (r *Replier) serve(ctx context.Context, env wire.Msg) (any, spmesh.Header, error) {
	req := r.pool.Get().(*Request)
	*req = Request{
		ID: env.ID, Attempt: int(env.Attempt), Header: env.Header,
		Time: time.Unix(0, env.Time), Data: env.Body, codec: r.codec,
	}
	if env.Deadline != 0 {
		req.Deadline = time.Unix(0, env.Deadline)
	}
	defer func() { // also on a panic, which the server recovers
		*req = Request{}
		r.pool.Put(req)
	}()
	v, err := r.h.ServeRequest(ctx, req)
	return v, req.reply, err
}

// Stats returns the replier's counters.
func (r *Replier) Stats() ReplierStats {
	return ReplierStats{
		Stats:         r.so.Stats(),
		InFlight:      int(r.srv.InFlight.Load()),
		HandlerErrors: r.srv.Errors.Load(),
		Panics:        r.srv.Panics.Load(),

		Abandoned: r.srv.Abandoned.Load(),
	}
}

// Drain stops taking requests, lets the running handlers finish and send
// their replies, then closes the replier. Requests that reached this
// replier but were not taken are resent by their callers when the
// connections close. If ctx ends first, Drain closes at once (running
// handlers see their ctx cancelled) and returns ctx.Err().
func (r *Replier) Drain(ctx context.Context) error { return r.srv.Drain(ctx) }

// Close closes the replier at once: running handlers see their ctx
// cancelled and their replies are dropped; requests not yet answered are
// resent by their callers to other repliers. Close returns once the
// handlers have returned, or after [HandlerGrace] if some ignore their ctx
// (they go on running; see [ReplierStats].Abandoned). It is idempotent.
func (r *Replier) Close() error { return r.srv.Close() }

// handleBare answers one bare request frame (WithBareFrames): the body is
// the request; the reply is the handler's value alone. There is no way to
// carry an error: a failed handler, or a reply that cannot be encoded,
// sends nothing (counted in HandlerErrors).
func (r *Replier) handleBare(base context.Context, m *sock.Frame) *sock.Frame {
	if max := r.so.Settings.MaxMsgSize; len(m.Body) > max {
		r.so.C.TooLarge.Add(1)
		r.so.C.Drop(1, &r.so.C.DroppedTooLarge)
		return nil
	}
	r.so.C.Received.Add(1)
	req := r.pool.Get().(*Request)
	*req = Request{Attempt: 1, Time: time.Now(), Data: m.Body, codec: r.codec}
	ctx, cancel := r.srv.HandlerContext(base, 0)
	v, err := r.srv.Call("request", req.ID, func() (any, error) { return r.h.ServeRequest(ctx, req) })
	cancel()
	*req = Request{}
	r.pool.Put(req)
	if err == nil {
		var out *sock.Frame
		if out, err = r.so.Encode(nil, v); err == nil {
			return out
		}
	}
	r.srv.Errors.Add(1)
	r.so.Settings.Logger.Warn("spmesh: bare request failed, no reply sent", "err", err)
	return nil
}
