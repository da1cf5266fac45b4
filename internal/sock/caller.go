package sock

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/wire"
	"go.nanomsg.org/mangos/v3/protocol"
)

// Frames are the envelope kinds a [Caller] sends and a [Server] answers
// with: requests and replies (reqrep), or jobs and acks (the pipeline's
// Producer and Worker, an error ack flagged as a nack). A peer of one
// flavour refuses the frames of the other instead of serving them by
// mistake.
type Frames struct {
	Request, Reply wire.Kind
	ErrFlags       uint64 // flags set on an error reply
	Bare           bool   // no envelope: bodies are the application bytes (WithBareFrames)
}

// RequestFrames are reqrep's frames; JobFrames the pipeline's.
var (
	RequestFrames = Frames{Request: wire.KindRequest, Reply: wire.KindReply}
	JobFrames     = Frames{Request: wire.KindJob, Reply: wire.KindAck, ErrFlags: wire.FlagNack}
)

// Failed reports whether a reply env carries a handler failure: an error
// text, or the error flags of its flavour (a nack from a peer that sent
// no text).
func (f Frames) Failed(env *wire.Msg) bool {
	return env.Err != "" || f.ErrFlags != 0 && env.Flags&f.ErrFlags != 0
}

// Op is the operation the frames carry, for a tracer and the logs.
func (f Frames) Op() string {
	if f.Request == wire.KindJob {
		return spmesh.TraceJob
	}
	return spmesh.TraceRequest
}

// Caller is the requesting side shared by reqrep's Requester and the
// pipeline's Producer: it sends one call through a socket's [Dispatch]
// (the peer with the fewest requests outstanding below its credit) until a
// reply comes, resending it to another peer when one has room after an
// attempt timeout or a lost connection, up to a number of attempts. It
// learns each peer's credit and load from the replies. It is safe for
// concurrent use.
type Caller struct {
	so *Socket
	d  *Dispatch
	fr Frames

	codec          spmesh.Codec
	attemptTimeout time.Duration // 0: none
	maxAttempts    int           // 0: unbounded
	wait           bool          // wait for a peer instead of ErrNoPeers

	// Timeouts counts attempts with no reply within the attempt timeout,
	// Lost those whose connection dropped, RemoteErrors the replies that
	// carried a handler error (RemoteErr).
	Timeouts, Lost, RemoteErrors atomic.Uint64
}

// CallerConfig configures a [Caller].
type CallerConfig struct {
	Frames         Frames
	AttemptTimeout time.Duration // 0: none
	MaxAttempts    int           // 0: unbounded
	Wait           bool          // wait for a peer to connect instead of failing with ErrNoPeers
	PeerCredit     int           // the credit of a peer until it announces its own
}

// NewCaller makes the Caller of so, a socket opened with protocol
// Dispatcher.
func NewCaller(so *Socket, c CallerConfig) *Caller {
	d := DispatchOf(so)
	d.SetDefaultCredit(c.PeerCredit)
	return &Caller{
		so: so, d: d, fr: c.Frames, codec: so.Settings.Codec,
		attemptTimeout: c.AttemptTimeout, maxAttempts: c.MaxAttempts, wait: c.Wait,
	}
}

// Dispatch returns the Caller's Dispatch (its per-peer counters).
func (c *Caller) Dispatch() *Dispatch { return c.d }

// Frames returns the Caller's frames.
func (c *Caller) Frames() Frames { return c.fr }

// Call is one call to send with [Caller.Do].
type Call struct {
	ID     wire.ID       // zero: a fresh one
	Header spmesh.Header // sent as is
	Body   any           // encoded with the socket's codec, unless Data is set
	Data   []byte        // non-nil: the body, already encoded
	// Attempt is the number of the first attempt sent (0 means 1).
	Attempt int
	// MaxAttempts is the highest attempt number sent (0: the Caller's).
	MaxAttempts int
	// AttemptTimeout overrides the Caller's when positive; negative: none.
	AttemptTimeout time.Duration
	// Avoid is a connection (from a previous reply) the first attempt does
	// not go to while another peer has room; 0: none.
	Avoid uint32
}

// Do sends call until a reply comes, decoding its envelope into env (for
// bare frames: env.Body is the reply). It returns the reply (the caller
// frees it once done with env, whose Body aliases it), the number of the
// attempt answered, and the connection that answered it (for a later
// Call.Avoid). A reply carrying a handler error is returned as any other:
// test it with Frames.Failed and turn it into an error with RemoteErr.
//
// Errors: ErrNoPeers (unless waiting), ctx's error, ErrClosed, a reply that
// is not the answer to this call (wrapping spmesh.ErrDecode, not resent),
// and, after the last attempt timed out or lost its connection, an error
// wrapping spmesh.ErrTimeout.
func (c *Caller) Do(ctx context.Context, call *Call, env *wire.Msg) (*Frame, int, uint32, error) {
	id := call.ID
	if id == (wire.ID{}) {
		id = c.so.NewID()
	}
	attempt := max(call.Attempt, 1)
	maxAttempts := call.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = c.maxAttempts
	}
	if maxAttempts > 0 && attempt > maxAttempts {
		return nil, 0, 0, Invalid("first attempt %d above max attempts %d", attempt, maxAttempts)
	}
	timeout := c.attemptTimeout
	if call.AttemptTimeout > 0 {
		timeout = call.AttemptTimeout
	} else if call.AttemptTimeout < 0 {
		timeout = 0
	}
	var deadline int64
	if d, ok := ctx.Deadline(); ok {
		deadline = d.UnixNano()
	}

	avoid := call.Avoid
	lost := false // the previous attempt's connection dropped
	for {
		m, err := c.encode(id, attempt, deadline, call)
		if err != nil {
			return nil, attempt, 0, err
		}
		t, err := c.send(ctx, m, avoid, lost, timeout)
		if err != nil {
			return nil, attempt, 0, c.Err(ctx, err)
		}
		c.so.C.Sent.Add(1)
		reply, err := t.Wait(ctx, timeout)
		pipe := t.Pipe()
		if err == nil && c.fr.Bare {
			// No envelope: the SP request id matched; the body is the reply.
			*env = wire.Msg{Kind: c.fr.Reply, ID: id, Body: reply.Body}
			t.Release()
			c.so.C.Received.Add(1)
			return reply, attempt, pipe, nil
		}
		if err == nil {
			if derr := wire.Decode(reply.Body, env); derr != nil || env.Kind != c.fr.Reply || env.ID != id {
				t.Release()
				reply.Free()
				c.so.C.DecodeErrors.Add(1)
				if derr == nil {
					derr = fmt.Errorf("%w: got a %d frame for request %s, want its reply", spmesh.ErrDecode, env.Kind, id)
				}
				return nil, attempt, pipe, fmt.Errorf("spmesh: reply: %w", derr)
			}
			if env.Credit != 0 {
				t.SetCredit(int(env.Credit))
			}
			t.SetLoad(int(env.InFlight))
			t.Release()
			c.so.C.Received.Add(1)
			return reply, attempt, pipe, nil
		}
		avoid = pipe // the resend goes elsewhere when it can
		t.Release()
		why := "connection lost"
		switch {
		case IsRecvTimeout(err):
			why = "attempt timed out"
			c.Timeouts.Add(1)
		case IsCanceled(err):
			c.Lost.Add(1)
			lost = true
		default:
			return nil, attempt, pipe, c.Err(ctx, err)
		}
		if err := ctx.Err(); err != nil {
			return nil, attempt, pipe, err
		}
		if maxAttempts > 0 && attempt >= maxAttempts {
			return nil, attempt, pipe, fmt.Errorf("%w: %s %s: no reply after attempt %d (%s)", spmesh.ErrTimeout, c.fr.Op(), id, attempt, why)
		}
		c.so.Settings.Logger.Debug("spmesh: resending", "op", c.fr.Op(), "id", id, "attempt", attempt+1, "reason", why)
		attempt++
		c.so.C.Resent.Add(1)
	}
}

// send sends m on a connection chosen by the Dispatch. After a lost
// connection (lost), a Caller that does not wait for peers still waits for
// one for a while (ResendWait) when none is left: a call already under way
// is resent when its replier reconnects (a replier hangs up on a requester
// whose replies back up: see spmesh.Stats.SendTimeouts), rather than
// failing with ErrNoPeers in the moment between the two connections.
func (c *Caller) send(ctx context.Context, m *Frame, avoid uint32, lost bool, timeout time.Duration) (*Ticket, error) {
	if c.wait || !lost {
		return c.d.Send(ctx, m, avoid, c.wait)
	}
	wctx, cancel := context.WithTimeout(ctx, ResendWait(c.so.Settings.ReconnectMax, timeout))
	defer cancel()
	t, err := c.d.Send(wctx, m, avoid, true)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, protocol.ErrNoPeers
	}
	return t, err
}

// ResendWait is how long a call whose connection dropped waits for a peer
// to resend to, when none is left and the caller does not wait for peers:
// the attempt timeout when there is one, else twice the longest redial
// interval (reconnectMax), at least a second.
func ResendWait(reconnectMax, attemptTimeout time.Duration) time.Duration {
	if attemptTimeout > 0 {
		return attemptTimeout
	}
	return max(2*reconnectMax, time.Second)
}

// encode builds the frame of one attempt of call: call.Data as is when
// set, else call.Body encoded with the codec.
func (c *Caller) encode(id wire.ID, attempt int, deadline int64, call *Call) (*Frame, error) {
	codec, body := c.codec, call.Body
	if call.Data != nil {
		codec, body = spmesh.Raw, call.Data
	}
	if c.fr.Bare {
		if len(call.Header) > 0 {
			return nil, errBareHeaders
		}
		return c.so.EncodeWith(codec, nil, body)
	}
	env := wire.Msg{Kind: c.fr.Request, ID: id, Time: time.Now().UnixNano(), Header: call.Header, Attempt: uint32(attempt), Deadline: deadline}
	return c.so.EncodeWith(codec, &env, body)
}

var errBareHeaders = fmt.Errorf("%w: headers on a bare requester: bare frames carry none (WithBareFrames)", spmesh.ErrInvalidOption)

// RemoteErr returns the error of an error reply env (see Frames.Failed):
// ctx's error when the caller's deadline has passed (the handler's ctx
// ended with it, which is most likely why it failed; the reply can beat
// the caller's own timer), else a *spmesh.RemoteError ("nack" when it
// carries no text). It counts it in RemoteErrors, and a refusal for size
// (code -2) in TooLarge.
func (c *Caller) RemoteErr(ctx context.Context, env *wire.Msg) error {
	c.RemoteErrors.Add(1)
	if env.Code == spmesh.CodeTooLarge && !RefusedOnReceipt(env) {
		// The peer refused the request for its size: counted on both
		// sides. (A reply refused here was counted on receipt.)
		c.so.C.TooLarge.Add(1)
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

// Err translates an error of a send or receive: the caller's ctx, then
// Close, then the socket's own.
func (c *Caller) Err(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return c.so.Explain(cerr)
	}
	if c.so.Closed() {
		return spmesh.ErrClosed
	}
	return c.so.Explain(Err(err))
}
