package reqrep

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

// maxIdle bounds the pool of idle mangos contexts a Requester keeps.
const maxIdle = 1024

// RequesterStats are a requester's counters.
type RequesterStats struct {
	spmesh.Stats
	// InFlight is the number of calls in progress.
	InFlight int
	// Timeouts counts attempts that got no reply within the attempt timeout.
	Timeouts uint64
	// Lost counts attempts whose connection dropped before the reply came.
	Lost uint64
	// RemoteErrors counts replies that carried a handler error.
	RemoteErrors uint64
}

// Requester sends requests to connected [Replier]s, spreading them over the
// connections, and waits for the replies. Many goroutines may call it at
// once: each call runs on its own mangos context (pooled), so calls never
// see each other's replies. A Requester is safe for concurrent use.
type Requester struct {
	so             *sock.Socket
	codec          spmesh.Codec
	fr             frames
	attemptTimeout time.Duration
	maxAttempts    int

	poolMu sync.Mutex
	pool   []*reqCtx

	inflight     atomic.Int64
	timeouts     atomic.Uint64
	lost         atomic.Uint64
	remoteErrors atomic.Uint64
}

// reqCtx is one pooled mangos REQ context and its current receive deadline.
type reqCtx struct {
	mc      mangos.Context
	timeout time.Duration
}

// NewRequester opens a requester. Give it addresses with [WithDial] or
// [WithListen] (or call [Requester.Dial] and [Requester.Listen] later), or a
// registry with [WithDiscovery].
func NewRequester(opts ...Option) (*Requester, error) {
	c, err := newConfig(forRequester, opts)
	if err != nil {
		return nil, err
	}
	so, err := sock.Open(sock.Req, c.sock, sock.Wiring{Watch: c.role})
	if err != nil {
		return nil, err
	}
	// spmesh resends itself (to number the attempts): mangos must not. With
	// no retry time, mangos cancels a request whose connection drops, and
	// the call resends it.
	for k, v := range map[string]any{
		mangos.OptionRetryTime:    time.Duration(0),
		mangos.OptionFailNoPeers:  !c.wait,
		mangos.OptionRecvDeadline: c.attemptTimeout,
	} {
		if err := so.M.SetOption(k, v); err != nil {
			so.Close()
			return nil, fmt.Errorf("spmesh: set %s: %w", k, sock.Err(err))
		}
	}
	return &Requester{
		so: so, codec: c.sock.Codec, fr: framesFor(c.role),
		attemptTimeout: c.attemptTimeout, maxAttempts: c.maxAttempts,
	}, nil
}

// Listen listens on addr for repliers to dial, returning the bound address.
func (r *Requester) Listen(addr string) (string, error) { return r.so.Listen(addr) }

// Dial connects to a replier listening at addr, in the background.
func (r *Requester) Dial(addr string) error { return r.so.Dial(addr) }

// Request sends req and decodes the reply into resp (a pointer; nil
// discards the reply). It returns [spmesh.ErrNoPeers] at once when no
// replier is connected (unless [WithWaitForReplier]), a [*spmesh.RemoteError]
// when the handler failed, and ctx.Err() when ctx ends first. The request is
// resent after a lost connection or an attempt timeout, so it may be handled
// more than once.
func (r *Requester) Request(ctx context.Context, req, resp any) error {
	_, err := r.RequestHeader(ctx, nil, req, resp)
	return err
}

// RequestHeader is [Requester.Request] with headers that travel with the
// request; it returns the headers of the reply.
func (r *Requester) RequestHeader(ctx context.Context, h spmesh.Header, req, resp any) (spmesh.Header, error) {
	var env wire.Msg
	c := Call{Header: h, Body: req}
	m, _, err := r.roundTrip(ctx, &c, &env)
	if err != nil {
		return nil, err
	}
	defer m.Free()
	if r.fr.failed(&env) {
		return env.Header, r.remoteErr(ctx, &env)
	}
	if resp != nil {
		if err := r.codec.Unmarshal(env.Body, resp); err != nil {
			r.so.C.DecodeErrors.Add(1)
			return env.Header, fmt.Errorf("spmesh: decode reply into %T: %w", resp, err)
		}
	}
	return env.Header, nil
}

// Ask sends req with r and returns the reply decoded as a Resp.
func Ask[Resp any](ctx context.Context, r *Requester, req any) (Resp, error) {
	var v Resp
	err := r.Request(ctx, req, &v)
	return v, err
}

// Do sends c and returns the reply undecoded. On a handler error it returns
// the reply (headers, attempt) together with the [*spmesh.RemoteError]; on
// other errors the reply is nil. With [Call.NoReply] it returns as soon as
// the request is on its way.
func (r *Requester) Do(ctx context.Context, c *Call) (*Reply, error) {
	if c == nil {
		return nil, sock.Invalid("nil call")
	}
	var env wire.Msg
	_, attempt, err := r.roundTrip(ctx, c, &env)
	if err != nil {
		return nil, err
	}
	if c.NoReply {
		return &Reply{ID: ID(env.ID), Attempt: attempt, codec: r.codec}, nil
	}
	// The reply keeps m's body: m goes to the garbage collector, not the pool.
	rep := &Reply{ID: ID(env.ID), Header: env.Header, Attempt: attempt, Data: env.Body, codec: r.codec}
	if r.fr.failed(&env) {
		return rep, r.remoteErr(ctx, &env)
	}
	return rep, nil
}

// roundTrip sends c until a reply comes, decoding its envelope into env.
// It returns the reply message (the caller frees it) and the attempt number
// that was answered.
func (r *Requester) roundTrip(ctx context.Context, c *Call, env *wire.Msg) (*mangos.Message, int, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if r.so.Closed() {
		return nil, 0, spmesh.ErrClosed
	}
	id := wire.ID(c.ID)
	if id == (wire.ID{}) {
		id = r.so.NewID()
	}
	attempt := max(c.Attempt, 1)
	maxAttempts := c.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = r.maxAttempts
	}
	if maxAttempts > 0 && attempt > maxAttempts {
		return nil, 0, sock.Invalid("first attempt %d above max attempts %d", attempt, maxAttempts)
	}
	timeout := r.attemptTimeout
	if c.AttemptTimeout > 0 {
		timeout = c.AttemptTimeout
	} else if c.AttemptTimeout < 0 {
		timeout = 0
	}
	var deadline int64
	if d, ok := ctx.Deadline(); ok {
		deadline = d.UnixNano()
	}

	rc, err := r.get(timeout)
	if err != nil {
		return nil, 0, sock.CtxErr(ctx, err)
	}
	stop := sock.Bind(ctx, rc.mc)
	r.inflight.Add(1)
	defer func() {
		r.inflight.Add(-1)
		if stop() {
			r.put(rc)
		}
	}()

	for {
		m, err := r.encode(id, attempt, deadline, c)
		if err != nil {
			return nil, attempt, err
		}
		if err := rc.mc.SendMsg(m); err != nil {
			return nil, attempt, r.err(ctx, err)
		}
		r.so.C.Sent.Add(1)
		if c.NoReply {
			env.ID = id
			return nil, attempt, nil
		}
		reply, err := rc.mc.RecvMsg()
		if err == nil {
			if derr := wire.Decode(reply.Body, env); derr != nil || env.Kind != r.fr.reply || env.ID != id {
				reply.Free()
				r.so.C.DecodeErrors.Add(1)
				if derr == nil {
					derr = fmt.Errorf("%w: got a %d frame for request %s, want its reply", spmesh.ErrDecode, env.Kind, id)
				}
				return nil, attempt, fmt.Errorf("spmesh: reply: %w", derr)
			}
			r.so.C.Received.Add(1)
			return reply, attempt, nil
		}
		why := "connection lost"
		switch {
		case errors.Is(err, mangos.ErrRecvTimeout):
			why = "attempt timed out"
			r.timeouts.Add(1)
		case errors.Is(err, mangos.ErrCanceled), errors.Is(err, mangos.ErrProtoState):
			// Canceled: the connection carrying the request dropped
			// while we waited. ProtoState: it dropped between the send
			// and the receive, and mangos cancelled the request before
			// RecvMsg began (no request left to wait for). Both are lost.
			r.lost.Add(1)
		default:
			return nil, attempt, r.err(ctx, err)
		}
		if err := ctx.Err(); err != nil {
			return nil, attempt, err
		}
		if maxAttempts > 0 && attempt >= maxAttempts {
			return nil, attempt, fmt.Errorf("%w: request %s: no reply after attempt %d (%s)", spmesh.ErrTimeout, id, attempt, why)
		}
		r.so.Settings.Logger.Debug("spmesh: resending request", "id", id, "attempt", attempt+1, "reason", why)
		attempt++
		r.so.C.Resent.Add(1)
	}
}

// remoteErr returns the error of an error reply: ctx's error when the
// caller's deadline has passed (the handler's ctx ended with it, which is
// most likely why it failed; the reply can beat the caller's own timer),
// else a *spmesh.RemoteError.
func (r *Requester) remoteErr(ctx context.Context, env *wire.Msg) error {
	r.remoteErrors.Add(1)
	if env.Code == spmesh.CodeTooLarge && !sock.RefusedOnReceipt(env) {
		// The replier refused the request for its size: counted on both
		// sides. (A reply refused here was counted on receipt.)
		r.so.C.TooLarge.Add(1)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	msg := env.Err
	if msg == "" {
		msg = "nack"
	}
	return &spmesh.RemoteError{Code: int(env.Code), Message: msg}
}

// err translates an error of a send or receive: the caller's ctx, then
// Close, then mangos's own.
func (r *Requester) err(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if r.so.Closed() {
		return spmesh.ErrClosed
	}
	return sock.Err(err)
}

// encode builds the frame of one attempt of c: c.Data as is when set, else
// c.Body encoded with the codec.
func (r *Requester) encode(id wire.ID, attempt int, deadline int64, c *Call) (*mangos.Message, error) {
	codec, body := r.codec, c.Body
	if c.Data != nil {
		codec, body = spmesh.Raw, c.Data
	}
	env := wire.Msg{Kind: r.fr.request, ID: id, Time: time.Now().UnixNano(), Header: c.Header, Attempt: uint32(attempt), Deadline: deadline}
	return r.so.EncodeWith(codec, &env, body)
}

// get takes an idle context from the pool or opens one.
func (r *Requester) get(timeout time.Duration) (*reqCtx, error) {
	var rc *reqCtx
	r.poolMu.Lock()
	if n := len(r.pool); n > 0 {
		rc = r.pool[n-1]
		r.pool[n-1] = nil
		r.pool = r.pool[:n-1]
	}
	r.poolMu.Unlock()
	if rc == nil {
		mc, err := r.so.M.OpenContext()
		if err != nil {
			return nil, err
		}
		rc = &reqCtx{mc: mc, timeout: r.attemptTimeout}
	}
	if rc.timeout != timeout {
		if err := rc.mc.SetOption(mangos.OptionRecvDeadline, timeout); err != nil {
			rc.mc.Close()
			return nil, err
		}
		rc.timeout = timeout
	}
	return rc, nil
}

// put returns a context that its call's ctx did not close to the pool.
func (r *Requester) put(rc *reqCtx) {
	r.poolMu.Lock()
	if len(r.pool) < maxIdle && !r.so.Closed() {
		r.pool = append(r.pool, rc)
		rc = nil
	}
	r.poolMu.Unlock()
	if rc != nil {
		rc.mc.Close()
	}
}

// Stats returns the requester's counters: Sent counts attempts (Resent the
// attempts after the first), Received the replies.
func (r *Requester) Stats() RequesterStats {
	return RequesterStats{
		Stats:        r.so.Stats(),
		InFlight:     int(r.inflight.Load()),
		Timeouts:     r.timeouts.Load(),
		Lost:         r.lost.Load(),
		RemoteErrors: r.remoteErrors.Load(),
	}
}

// Close closes the requester at once: calls in progress return
// [spmesh.ErrClosed]. It is idempotent.
func (r *Requester) Close() error {
	err := r.so.Close()
	r.poolMu.Lock()
	r.pool = nil
	r.poolMu.Unlock()
	return err
}
