package reqrep

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
)

// maxFailed bounds how many failed requests a Requester remembers, to send
// a caller's retry of one (same ID) to another replier.
const maxFailed = 4096

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
	// PerPeer are the dispatch counters of each connected replier.
	PerPeer []spmesh.PeerStats
	// ReplyTime is the distribution of the times from sending an attempt
	// to its reply, over every replier (a reply that came after its call
	// gave up is not in it).
	ReplyTime spmesh.Histogram
}

// Requester sends requests to connected [Replier]s and waits for the
// replies. It chooses the replier of each request: the one with the fewest
// requests outstanding, among those below their credit; ties go round
// robin. Many goroutines may call it at once; calls never see each other's
// replies. A Requester is safe for concurrent use.
type Requester struct {
	so             *sock.Socket
	d              *sock.Dispatch
	codec          spmesh.Codec
	fr             frames
	attemptTimeout time.Duration
	maxAttempts    int
	wait           bool

	failMu sync.Mutex
	failed map[wire.ID]uint32 // request -> connection whose handler failed it

	calls        sock.Pending // calls in progress (InFlight); stopped by Drain
	timeouts     atomic.Uint64
	lost         atomic.Uint64
	remoteErrors atomic.Uint64
}

// NewRequester opens a requester. Give it addresses with [WithDial] or
// [WithListen] (or call [Requester.Dial] and [Requester.Listen] later), or a
// registry with [WithDiscovery].
func NewRequester(opts ...Option) (*Requester, error) {
	c, err := newConfig(forRequester, opts)
	if err != nil {
		return nil, err
	}
	so, err := sock.Open(sock.Dispatcher, c.sock, sock.Wiring{Watch: c.role, Bare: c.bare})
	if err != nil {
		return nil, err
	}
	d := sock.DispatchOf(so)
	d.SetDefaultCredit(c.peerCredit)
	return &Requester{
		so: so, d: d, codec: c.sock.Codec, fr: framesFor(&c),
		attemptTimeout: c.attemptTimeout, maxAttempts: c.maxAttempts, wait: c.wait,
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
// request ([Request.Header]); it returns the headers the replier set
// ([Request.SetReplyHeader]), as [Reply.Header] holds them for
// [Requester.Do]. A bare Requester ([WithBareFrames]) carries none:
// non-empty headers fail with an error wrapping [spmesh.ErrInvalidOption].
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
// other errors the reply is nil.
func (r *Requester) Do(ctx context.Context, c *Call) (*Reply, error) {
	if c == nil {
		return nil, sock.Invalid("nil call")
	}
	var env wire.Msg
	_, attempt, err := r.roundTrip(ctx, c, &env)
	if err != nil {
		return nil, err
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
func (r *Requester) roundTrip(ctx context.Context, c *Call, env *wire.Msg) (*sock.Frame, int, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if r.so.Closed() {
		return nil, 0, spmesh.ErrClosed
	}
	if !r.calls.Enter() {
		return nil, 0, errDraining
	}
	defer r.calls.Done(1)
	if r.so.Settings.Traced() && !r.fr.bare {
		return r.tracedRoundTrip(ctx, c, env)
	}
	return r.sendUntilReply(ctx, c, c.Header, env)
}

// tracedRoundTrip is roundTrip with the socket's tracer: one span per call,
// its trace context in the headers of every attempt, ended with the reply
// (a handler error, nack included, ends it with the remote error).
func (r *Requester) tracedRoundTrip(ctx context.Context, c *Call, env *wire.Msg) (*sock.Frame, int, error) {
	ctx, h, end := r.so.Settings.TraceSend(ctx, r.fr.op(), r.so.Settings.Service, c.Header)
	m, attempt, err := r.sendUntilReply(ctx, c, h, env)
	switch {
	case err != nil:
		end(err)
	case r.fr.failed(env):
		end(&spmesh.RemoteError{Code: int(env.Code), Message: env.Err})
	default:
		end(nil)
	}
	return m, attempt, err
}

// sendUntilReply sends c with headers h until a reply comes (see
// roundTrip).
func (r *Requester) sendUntilReply(ctx context.Context, c *Call, h spmesh.Header, env *wire.Msg) (*sock.Frame, int, error) {
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

	var avoid uint32
	if attempt > 1 {
		avoid = r.failedOn(id)
	}
	for {
		m, err := r.encode(id, attempt, deadline, c, h)
		if err != nil {
			return nil, attempt, err
		}
		t, err := r.d.Send(ctx, m, avoid, r.wait)
		if err != nil {
			return nil, attempt, r.err(ctx, err)
		}
		r.so.C.Sent.Add(1)
		reply, err := t.Wait(ctx, timeout)
		if err == nil && r.fr.bare {
			// No envelope: the SP request id matched; the body is the reply.
			*env = wire.Msg{Kind: r.fr.reply, ID: id, Body: reply.Body}
			t.Release()
			r.so.C.Received.Add(1)
			return reply, attempt, nil
		}
		if err == nil {
			if derr := wire.Decode(reply.Body, env); derr != nil || env.Kind != r.fr.reply || env.ID != id {
				t.Release()
				reply.Free()
				r.so.C.DecodeErrors.Add(1)
				if derr == nil {
					derr = fmt.Errorf("%w: got a %d frame for request %s, want its reply", spmesh.ErrDecode, env.Kind, id)
				}
				return nil, attempt, fmt.Errorf("spmesh: reply: %w", derr)
			}
			if env.Credit != 0 {
				t.SetCredit(int(env.Credit))
			}
			if r.fr.failed(env) {
				r.failedAt(id, t.Pipe())
			}
			t.Release()
			r.so.C.Received.Add(1)
			return reply, attempt, nil
		}
		avoid = t.Pipe() // the resend goes elsewhere when it can
		t.Release()
		why := "connection lost"
		switch {
		case sock.IsRecvTimeout(err):
			why = "attempt timed out"
			r.timeouts.Add(1)
		case sock.IsCanceled(err):
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

// failedAt remembers that the replier on connection pipe failed request
// id, so that a retry of it (the caller's, with the same ID) goes to
// another replier when one has room.
func (r *Requester) failedAt(id wire.ID, pipe uint32) {
	r.failMu.Lock()
	if r.failed == nil || len(r.failed) >= maxFailed {
		r.failed = make(map[wire.ID]uint32)
	}
	r.failed[id] = pipe
	r.failMu.Unlock()
}

// failedOn returns the connection whose replier last failed request id (0:
// none), forgetting it.
func (r *Requester) failedOn(id wire.ID) uint32 {
	r.failMu.Lock()
	defer r.failMu.Unlock()
	p := r.failed[id]
	if p != 0 {
		delete(r.failed, id)
	}
	return p
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
// Close, then the socket's own.
func (r *Requester) err(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return r.so.Explain(cerr)
	}
	if r.so.Closed() {
		return spmesh.ErrClosed
	}
	return r.so.Explain(sock.Err(err))
}

// encode builds the frame of one attempt of c, with headers h: c.data as
// is when set, else c.Body encoded with the codec.
func (r *Requester) encode(id wire.ID, attempt int, deadline int64, c *Call, h spmesh.Header) (*sock.Frame, error) {
	codec, body := r.codec, c.Body
	if c.data != nil {
		codec, body = spmesh.Raw, c.data
	}
	if r.fr.bare {
		if len(c.Header) > 0 {
			return nil, errBareHeaders
		}
		return r.so.EncodeWith(codec, nil, body)
	}
	env := wire.Msg{Kind: r.fr.request, ID: id, Time: time.Now().UnixNano(), Header: h, Attempt: uint32(attempt), Deadline: deadline}
	return r.so.EncodeWith(codec, &env, body)
}

// Stats returns the requester's counters: Sent counts attempts (Resent the
// attempts after the first), Received the replies.
func (r *Requester) Stats() RequesterStats {
	return RequesterStats{
		Stats:        r.so.Stats(),
		InFlight:     r.calls.Len(),
		Timeouts:     r.timeouts.Load(),
		Lost:         r.lost.Load(),
		RemoteErrors: r.remoteErrors.Load(),
		PerPeer:      r.d.Peers(),
		ReplyTime:    r.d.ReplyTime(),
	}
}

// errDraining is a call's error once Drain was called.
var errDraining = fmt.Errorf("%w: requester draining", spmesh.ErrClosed)

// Addrs returns the addresses the requester listens on.
func (r *Requester) Addrs() []string { return r.so.Bound() }

// Drain closes the requester gracefully: new calls fail at once with an
// error wrapping [spmesh.ErrClosed]; the calls in progress go on (resends
// included) until each gets its reply or fails; then Drain closes. If ctx
// ends first, Drain closes at once: the calls still in progress return
// [spmesh.ErrClosed], and Drain returns ctx's error. Concurrent calls all
// wait; once closed (by Close or a Drain), Drain returns
// [spmesh.ErrClosed], as on every socket type.
func (r *Requester) Drain(ctx context.Context) error {
	if r.so.Closed() {
		return spmesh.ErrClosed
	}
	r.so.C.Draining.Store(true)
	r.calls.Stop()
	err := r.calls.Wait(ctx)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close closes the requester at once: calls in progress return
// [spmesh.ErrClosed]. It is idempotent.
func (r *Requester) Close() error {
	return r.so.Close()
}

var errBareHeaders = fmt.Errorf("%w: headers on a bare requester: bare frames carry none (WithBareFrames)", spmesh.ErrInvalidOption)
