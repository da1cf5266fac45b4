package reqrep

import (
	"context"
	"fmt"
	"sync"

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
	so    *sock.Socket
	c     *sock.Caller // sends, resends, credits: shared with the pipeline's Producer
	codec spmesh.Codec
	fr    sock.Frames

	failMu sync.Mutex
	failed map[wire.ID]uint32 // request -> connection whose handler failed it

	calls sock.Pending // calls in progress (InFlight); stopped by Drain
}

// NewRequester opens a requester. Give it addresses with [WithDial] or
// [WithListen] (or call [Requester.Dial] and [Requester.Listen] later), or a
// registry with [WithDiscovery].
func NewRequester(opts ...Option) (*Requester, error) {
	c, err := newConfig(forRequester, opts)
	if err != nil {
		return nil, err
	}
	so, err := sock.Open(sock.Dispatcher, c.sock, sock.Wiring{Watch: spmesh.RoleReplier, Bare: c.bare})
	if err != nil {
		return nil, err
	}
	fr := framesFor(&c)
	return &Requester{
		so: so, codec: c.sock.Codec, fr: fr,
		c: sock.NewCaller(so, sock.CallerConfig{
			Frames: fr, AttemptTimeout: c.attemptTimeout, MaxAttempts: c.maxAttempts,
			Wait: c.wait, PeerCredit: c.peerCredit,
		}),
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
// more than once; after a lost connection with no replier left, it waits
// for one to connect for a while (see the package doc) before failing with
// [spmesh.ErrNoPeers].
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
	if r.fr.Failed(&env) {
		return env.Header, r.c.RemoteErr(ctx, &env)
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
	if r.fr.Failed(&env) {
		return rep, r.c.RemoteErr(ctx, &env)
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
	if r.so.Settings.Traced() && !r.fr.Bare {
		return r.tracedRoundTrip(ctx, c, env)
	}
	return r.send(ctx, c, c.Header, env)
}

// tracedRoundTrip is roundTrip with the socket's tracer: one span per call,
// its trace context in the headers of every attempt, ended with the reply
// (a handler error ends it with the remote error).
func (r *Requester) tracedRoundTrip(ctx context.Context, c *Call, env *wire.Msg) (*sock.Frame, int, error) {
	ctx, h, end := r.so.Settings.TraceSend(ctx, r.fr.Op(), r.so.Settings.Service, c.Header)
	m, attempt, err := r.send(ctx, c, h, env)
	switch {
	case err != nil:
		end(err)
	case r.fr.Failed(env):
		end(&spmesh.RemoteError{Code: int(env.Code), Message: env.Err})
	default:
		end(nil)
	}
	return m, attempt, err
}

// send sends c with headers h through the Caller until a reply comes (see
// roundTrip). A caller's retry of a failed request (same ID) goes to
// another replier than the one that failed it, when one has room.
func (r *Requester) send(ctx context.Context, c *Call, h spmesh.Header, env *wire.Msg) (*sock.Frame, int, error) {
	call := sock.Call{
		ID: wire.ID(c.ID), Header: h, Body: c.Body,
		Attempt: c.Attempt, MaxAttempts: c.MaxAttempts, AttemptTimeout: c.AttemptTimeout,
	}
	if call.ID == (wire.ID{}) {
		call.ID = r.so.NewID()
	} else if c.Attempt > 1 {
		call.Avoid = r.failedOn(call.ID)
	}
	m, attempt, pipe, err := r.c.Do(ctx, &call, env)
	if err == nil && r.fr.Failed(env) {
		r.failedAt(call.ID, pipe)
	}
	return m, attempt, err
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

// Stats returns the requester's counters: Sent counts attempts (Resent the
// attempts after the first), Received the replies.
func (r *Requester) Stats() RequesterStats {
	return RequesterStats{
		Stats:        r.so.Stats(),
		InFlight:     r.calls.Len(),
		Timeouts:     r.c.Timeouts.Load(),
		Lost:         r.c.Lost.Load(),
		RemoteErrors: r.c.RemoteErrors.Load(),
		PerPeer:      r.c.Dispatch().Peers(),
		ReplyTime:    r.c.Dispatch().ReplyTime(),
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
