package reqrep

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
	"go.nanomsg.org/mangos/v3"
)

// linger is how long Drain waits, after the last reply was handed to its
// connection, for the connections to write it before closing them (mangos
// has no flush). A reply lost here is not lost work: the caller resends.
const linger = 50 * time.Millisecond

// ReplierStats are a replier's counters. Received counts requests handed to
// the handler, Sent the replies (error replies included), DecodeErrors the
// frames that were not requests (each answered with an error reply), and
// Dropped the requests not handed to the handler: oversized, expired on
// arrival (both answered with an error), or caught by Drain (resent by
// their callers).
type ReplierStats struct {
	spmesh.Stats
	// InFlight is the number of handlers running.
	InFlight int
	// Errors counts handler errors (panics included).
	Errors uint64
	// Panics counts recovered handler panics.
	Panics uint64
	// Draining is true once Drain has been called: the replier takes no
	// more requests.
	Draining bool
}

// Replier answers requests with a [Handler], running up to its concurrency
// ([WithConcurrency]) handlers at once, each on its own mangos context.
// A Replier is safe for concurrent use.
type Replier struct {
	so      *sock.Socket
	h       Handler
	codec   spmesh.Codec
	fr      frames
	workers []*worker
	wg      sync.WaitGroup

	base     context.Context // parent of handler contexts; cancelled by Close
	cancel   context.CancelFunc
	draining atomic.Bool
	drainMu  sync.Mutex // one Drain at a time

	inflight atomic.Int64
	errs     atomic.Uint64
	panics   atomic.Uint64
}

// worker states, for Drain to stop idle workers without losing a request.
const (
	busy int32 = iota
	idle
	stopped
)

type worker struct {
	mc    mangos.Context
	state atomic.Int32
}

// NewReplier opens a replier serving h. Give it addresses with [WithListen]
// or [WithDial] (or call [Replier.Listen] and [Replier.Dial] later), or a
// registry with [WithDiscovery].
func NewReplier(h Handler, opts ...Option) (*Replier, error) {
	if h == nil {
		return nil, sock.Invalid("nil handler")
	}
	c, err := newConfig(forReplier, opts)
	if err != nil {
		return nil, err
	}
	so, err := sock.Open(sock.Rep, c.sock, sock.Wiring{Bind: c.role})
	if err != nil {
		return nil, err
	}
	r := &Replier{so: so, h: h, codec: c.sock.Codec, fr: framesFor(c.role)}
	r.base, r.cancel = context.WithCancel(context.Background())
	for range c.concurrency {
		mc, err := so.M.OpenContext()
		if err != nil {
			r.Close()
			return nil, sock.Err(err)
		}
		r.workers = append(r.workers, &worker{mc: mc})
	}
	r.wg.Add(len(r.workers))
	for _, w := range r.workers {
		go r.serve(w)
	}
	return r, nil
}

// Listen listens on addr for requesters to dial, returning the bound address
// (port 0 resolved).
func (r *Replier) Listen(addr string) (string, error) { return r.so.Listen(addr) }

// Dial connects to a requester listening at addr, in the background.
func (r *Replier) Dial(addr string) error { return r.so.Dial(addr) }

// Addrs returns the addresses the replier listens on.
func (r *Replier) Addrs() []string { return r.so.Bound() }

func (r *Replier) serve(w *worker) {
	defer r.wg.Done()
	defer w.mc.Close()
	req := &Request{codec: r.codec}
	var env wire.Msg
	for {
		if !w.state.CompareAndSwap(busy, idle) {
			return
		}
		// Drain sets draining, then stops every idle worker: whichever of
		// the two sees the other first stops this one.
		if r.draining.Load() && w.state.CompareAndSwap(idle, stopped) {
			return
		}
		m, err := w.mc.RecvMsg()
		if !w.state.CompareAndSwap(idle, busy) {
			// Drain closed the context under us: a request taken now
			// cannot be answered. The caller resends it when Drain
			// closes the connection.
			if m != nil {
				r.so.C.Dropped.Add(1)
				m.Free()
			}
			return
		}
		if err != nil {
			if errors.Is(err, mangos.ErrClosed) {
				return
			}
			r.so.Settings.Logger.Warn("spmesh: replier receive", "err", err)
			continue
		}
		r.handle(w, m, req, &env)
	}
}

// handle answers one request frame.
func (r *Replier) handle(w *worker, m *mangos.Message, req *Request, env *wire.Msg) {
	defer m.Free()
	if max := r.so.Settings.MaxMsgSize; len(m.Body) > max {
		r.so.C.Dropped.Add(1)
		r.reply(w, &wire.Msg{}, nil, fmt.Errorf("%w: request of %d bytes, limit %d", spmesh.ErrTooLarge, len(m.Body), max), nil)
		return
	}
	if err := wire.Decode(m.Body, env); err != nil || env.Kind != r.fr.request {
		r.so.C.DecodeErrors.Add(1)
		if err == nil {
			err = fmt.Errorf("%w: got a %d frame, want a request (%d)", spmesh.ErrDecode, env.Kind, r.fr.request)
		}
		r.reply(w, &wire.Msg{ID: env.ID}, nil, err, nil)
		return
	}
	r.so.C.Received.Add(1)
	*req = Request{
		ID: ID(env.ID), Attempt: int(env.Attempt), Header: env.Header,
		Time: time.Unix(0, env.Time), Data: env.Body, codec: r.codec,
	}
	ctx, cancel := r.base, context.CancelFunc(nil)
	if env.Deadline != 0 {
		req.Deadline = time.Unix(0, env.Deadline)
		if !time.Now().Before(req.Deadline) {
			// Abandoned before it was taken: don't do the work.
			r.so.C.Dropped.Add(1)
			r.reply(w, env, nil, fmt.Errorf("spmesh: request expired before it was handled: %w", context.DeadlineExceeded), nil)
			req.Data, req.Header = nil, nil
			return
		}
		ctx, cancel = context.WithDeadline(r.base, req.Deadline)
	}
	r.inflight.Add(1)
	v, err := r.call(ctx, req)
	r.inflight.Add(-1)
	if cancel != nil {
		cancel()
	}
	switch {
	case err == SkipReply:
		// One-way: nothing goes back.
	case err != nil:
		r.errs.Add(1)
		fallthrough
	default:
		r.reply(w, env, v, err, req.reply)
	}
	req.Data, req.Header, req.reply = nil, nil, nil
}

// call runs the handler, turning a panic into an error.
func (r *Replier) call(ctx context.Context, req *Request) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.panics.Add(1)
			r.so.Settings.Logger.Error("spmesh: handler panic recovered", "id", req.ID, "attempt", req.Attempt, "panic", p, "stack", string(debug.Stack()))
			v, err = nil, spmesh.Errorf(spmesh.CodePanic, "panic: %v", p)
		}
	}()
	return r.h.ServeRequest(ctx, req)
}

// reply sends the reply to the request env: v encoded, or herr when non-nil.
func (r *Replier) reply(w *worker, env *wire.Msg, v any, herr error, h spmesh.Header) {
	out := mangos.NewMessage(sizeHint(h, v))
	renv := wire.Msg{Kind: r.fr.reply, ID: env.ID, Time: time.Now().UnixNano(), Header: h, Attempt: env.Attempt}
	if herr == nil {
		b, err := spmesh.AppendMarshal(r.codec, wire.AppendHeader(out.Body[:0], &renv), v)
		switch {
		case err != nil:
			herr = fmt.Errorf("spmesh: encode reply %T: %w", v, err)
		case len(b) > r.so.Settings.MaxMsgSize:
			herr = fmt.Errorf("%w: reply of %d bytes, limit %d", spmesh.ErrTooLarge, len(b), r.so.Settings.MaxMsgSize)
		default:
			out.Body = b
		}
		if herr != nil {
			r.errs.Add(1)
			r.so.Settings.Logger.Warn("spmesh: cannot send reply", "id", ID(env.ID), "err", herr)
		}
	}
	if herr != nil {
		renv.Err = herr.Error()
		if renv.Err == "" {
			renv.Err = "error"
		}
		renv.Flags = r.fr.errFlags
		var c spmesh.Coder
		var re *spmesh.RemoteError
		switch {
		case errors.As(herr, &c):
			renv.Code = int64(c.Code())
		case errors.As(herr, &re):
			renv.Code = int64(re.Code)
		}
		out.Body = wire.AppendHeader(out.Body[:0], &renv)
	}
	if err := w.mc.SendMsg(out); err != nil {
		r.so.C.Dropped.Add(1)
		return
	}
	r.so.C.Sent.Add(1)
}

// Stats returns the replier's counters.
func (r *Replier) Stats() ReplierStats {
	return ReplierStats{
		Stats:    r.so.Stats(),
		InFlight: int(r.inflight.Load()),
		Errors:   r.errs.Load(),
		Panics:   r.panics.Load(),
		Draining: r.draining.Load(),
	}
}

// Drain stops taking requests, lets the running handlers finish and send
// their replies, then closes the replier. Requests that reached this
// replier but were not taken are resent by their callers when the
// connections close. If ctx ends first, Drain closes at once (running
// handlers see their ctx cancelled) and returns ctx.Err().
func (r *Replier) Drain(ctx context.Context) error {
	if r.so.Closed() {
		return spmesh.ErrClosed
	}
	r.drainMu.Lock()
	defer r.drainMu.Unlock()
	if r.so.Closed() {
		return spmesh.ErrClosed
	}
	r.draining.Store(true)
	for _, w := range r.workers {
		if w.state.CompareAndSwap(idle, stopped) {
			w.mc.Close()
		}
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
		t := time.NewTimer(linger)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	case <-ctx.Done():
		err = ctx.Err()
	}
	r.Close()
	<-done
	return err
}

// Close closes the replier at once: running handlers see their ctx
// cancelled and their replies are dropped; requests not yet answered are
// resent by their callers to other repliers. Close returns once the
// handlers have returned. It is idempotent.
func (r *Replier) Close() error {
	// Close the socket first: a handler ending because of the cancel must
	// not get its reply out, so that the caller resends the request.
	err := r.so.Close()
	r.cancel()
	r.wg.Wait()
	return err
}
