package sock

import (
	"context"

	"github.com/spmesh/spmesh"
)

// WithTracer sets the socket's tracer (none by default): see
// [spmesh.Tracer]. Bare frames carry no header, so a socket with
// WithBareFrames propagates no trace context.
func WithTracer(t spmesh.Tracer) Option {
	return func(s *Settings) error {
		if t == nil {
			return Invalid("WithTracer: nil tracer")
		}
		s.Tracer = t
		return nil
	}
}

// noEnd is the end function of a message that is not traced.
func noEnd(error) {}

// TraceSend starts the tracing of a message sent (op, to dest) with header
// h: it returns the context and header to send with, and the function to
// call with the outcome. Without a tracer it returns ctx and h as they are
// and a no-op end, allocating nothing.
func (s *Settings) TraceSend(ctx context.Context, op, dest string, h spmesh.Header) (context.Context, spmesh.Header, func(error)) {
	if s.Tracer == nil {
		return ctx, h, noEnd
	}
	tctx, th, end := s.Tracer.Send(ctx, op, dest, h)
	if tctx == nil {
		tctx = ctx
	}
	if end == nil {
		end = noEnd
	}
	return tctx, th, end
}

// TraceReceive starts the tracing of a message received (op, for dest)
// with header h: it returns the context its handler runs in (or the
// message carries), and the function to call when the handler returned.
// Without a tracer it returns ctx and a no-op end, allocating nothing.
func (s *Settings) TraceReceive(ctx context.Context, op, dest string, h spmesh.Header) (context.Context, func(error)) {
	if s.Tracer == nil {
		return ctx, noEnd
	}
	tctx, end := s.Tracer.Receive(ctx, op, dest, h)
	if tctx == nil {
		tctx = ctx
	}
	if end == nil {
		end = noEnd
	}
	return tctx, end
}

// Traced reports whether the socket has a tracer.
func (s *Settings) Traced() bool { return s.Tracer != nil }
