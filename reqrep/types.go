package reqrep

import (
	"context"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
)

// ID identifies a request. It stays the same across the resends of one call
// (and across a caller's own retries when it passes the ID in [Call.ID]), so
// a replier can de-duplicate by it.
type ID = spmesh.ID

// Request is one request as a [Handler] sees it. It and its Data are valid
// only until the handler returns: copy what must outlive it.
type Request struct {
	// ID identifies the request; a resend carries the same ID.
	ID ID
	// Attempt numbers the delivery, from 1. Above 1, an earlier attempt may
	// have been handled already (here or on another replier).
	Attempt int
	// Header holds the caller's headers (nil when it sent none).
	Header spmesh.Header
	// Deadline is the caller's deadline (zero when it has none). The
	// handler's ctx ends at the same instant.
	Deadline time.Time
	// Time is when the caller sent this attempt, by the caller's clock.
	Time time.Time
	// Data is the encoded request body; Decode turns it into a value.
	Data []byte

	codec spmesh.Codec
	reply spmesh.Header
}

// Decode decodes the request body into v (a pointer) with the replier's codec.
func (r *Request) Decode(v any) error {
	if r == nil {
		return sock.NoValue("Request")
	}
	return sock.DecodeBody(r.codec, r.Data, v, "Request")
}

// SetReplyHeader sets a header that travels back with the reply (also with
// an error reply).
func (r *Request) SetReplyHeader(key, value string) {
	sock.SetHeader(&r.reply, key, value)
}

// Handler serves requests for a [Replier]. ServeRequest returns the reply
// value (encoded with the codec; nil encodes the codec's nil) or an error,
// which reaches the caller as a [*spmesh.RemoteError] carrying the error's
// text and, when the error implements [spmesh.Coder] (see [spmesh.Errorf]),
// its code. A panic is recovered and reported the same way with code
// [spmesh.CodePanic].
//
// ctx ends when the caller's deadline passes or the Replier closes. Under
// at-least-once delivery a request can be handled more than once: use
// [Request.ID] (and [Request.Attempt] > 1 as a hint) to de-duplicate work
// that is not idempotent.
type Handler interface {
	ServeRequest(ctx context.Context, req *Request) (reply any, err error)
}

// HandlerFunc adapts a function to a [Handler].
type HandlerFunc func(ctx context.Context, req *Request) (any, error)

// ServeRequest calls f.
func (f HandlerFunc) ServeRequest(ctx context.Context, req *Request) (any, error) {
	return f(ctx, req)
}

// TypedHandler adapts a function taking a decoded In to a [Handler]. A body
// that does not decode as an In is answered with an error wrapping
// [spmesh.ErrDecode] without calling f.
// TypedHandler(nil) is nil, which [NewReplier] refuses.
func TypedHandler[In, Out any](f func(ctx context.Context, req *Request, in In) (Out, error)) Handler {
	if f == nil {
		return nil // refused by the constructor
	}
	return HandlerFunc(func(ctx context.Context, req *Request) (any, error) {
		var in In
		if err := req.Decode(&in); err != nil {
			return nil, err
		}
		return f(ctx, req, in)
	})
}

// Call is a request with every detail under the caller's control, for
// [Requester.Do]. The zero values take the Requester's defaults.
type Call struct {
	// ID identifies the request; zero picks a fresh one. A caller that
	// retries a call itself (after a remote error, say) passes the same ID
	// so that handlers can de-duplicate.
	ID ID
	// Header travels with the request.
	Header spmesh.Header
	// Body is the request value, encoded with the codec.
	Body any
	// Attempt is the number of the first attempt sent (0 means 1). A caller
	// that retries a call itself continues the count here, so that handlers
	// and MaxAttempts see the attempts of every try.
	Attempt int
	// MaxAttempts is the highest attempt number sent (0: the Requester's
	// [WithMaxAttempts] setting).
	MaxAttempts int
	// AttemptTimeout overrides [WithAttemptTimeout] for this call when
	// positive; negative disables the per-attempt timeout.
	AttemptTimeout time.Duration
}

// Reply is the answer to a [Call].
type Reply struct {
	// ID is the request's ID.
	ID ID
	// Header holds the replier's reply headers (nil when it set none).
	Header spmesh.Header
	// Attempt is the number of the attempt that was answered.
	Attempt int
	// Data is the encoded reply body; Decode turns it into a value.
	Data []byte

	codec spmesh.Codec
}

// Decode decodes the reply body into v (a pointer) with the requester's codec.
func (r *Reply) Decode(v any) error {
	if r == nil {
		return sock.NoValue("Reply")
	}
	return sock.DecodeBody(r.codec, r.Data, v, "Reply")
}
