package otelspmesh

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/spmesh/spmesh"
)

// ScopeName is the instrumentation scope of the spans.
const ScopeName = "github.com/spmesh/spmesh/otelspmesh"

// Option configures a Tracer.
type Option func(*config)

type config struct {
	tp   trace.TracerProvider
	prop propagation.TextMapPropagator
}

// WithTracerProvider sets the provider of the spans (default: the global
// one, otel.GetTracerProvider, which records nothing until one is set).
// A nil provider is ignored.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) {
		if tp != nil {
			c.tp = tp
		}
	}
}

// WithPropagators sets how trace context is written into and read from
// headers (default: the global propagator when one was set with
// otel.SetTextMapPropagator before NewTracer, else W3C TraceContext). A
// nil propagator is ignored.
func WithPropagators(p propagation.TextMapPropagator) Option {
	return func(c *config) {
		if p != nil {
			c.prop = p
		}
	}
}

// Tracer is an [spmesh.Tracer] backed by OpenTelemetry. It is safe for
// concurrent use; one serves every socket of a process.
type Tracer struct {
	tr   trace.Tracer
	prop propagation.TextMapPropagator
}

var _ spmesh.Tracer = (*Tracer)(nil)

// NewTracer returns a tracer configured by opts.
func NewTracer(opts ...Option) *Tracer {
	c := config{tp: otel.GetTracerProvider()}
	for _, o := range opts {
		o(&c)
	}
	if c.prop == nil {
		c.prop = otel.GetTextMapPropagator()
		if len(c.prop.Fields()) == 0 { // none set: the default no-op
			c.prop = propagation.TraceContext{}
		}
	}
	return &Tracer{tr: c.tp.Tracer(ScopeName), prop: c.prop}
}

// Send starts the span of a message sent and returns a copy of h with its
// trace context. Its parent is ctx's span or, when ctx has none, the trace
// context h already carries (a job recovered from a producer's outbox
// after a restart continues the trace it was first sent in).
func (t *Tracer) Send(ctx context.Context, op, dest string, h spmesh.Header) (context.Context, spmesh.Header, func(error)) {
	if len(h) > 0 && !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = t.prop.Extract(ctx, propagation.MapCarrier(h))
	}
	start := startProducer
	if answered(op) {
		start = startClient
	}
	ctx, span := t.tr.Start(ctx, spanName(op, dest), start...)
	if !span.SpanContext().IsValid() {
		return ctx, h, endFunc(span, op, dest) // nothing to add: send h as it is
	}
	out := make(spmesh.Header, len(h)+2)
	for k, v := range h {
		out[k] = v
	}
	t.prop.Inject(ctx, propagation.MapCarrier(out)) // replaces a trace context h carried
	return ctx, out, endFunc(span, op, dest)
}

// Receive extracts the trace context of h and starts the span of a
// message received, its child.
func (t *Tracer) Receive(ctx context.Context, op, dest string, h spmesh.Header) (context.Context, func(error)) {
	start := startConsumer
	if answered(op) {
		start = startServer
	}
	ctx = t.prop.Extract(ctx, propagation.MapCarrier(h))
	ctx, span := t.tr.Start(ctx, spanName(op, dest), start...)
	return ctx, endFunc(span, op, dest)
}

// answered reports whether op has an answer (client/server spans).
func answered(op string) bool {
	return op == spmesh.TraceRequest || op == spmesh.TraceSurvey
}

func spanName(op, dest string) string {
	if dest == "" {
		return op
	}
	return op + " " + dest
}

func attrs(op, dest string) []attribute.KeyValue {
	a := []attribute.KeyValue{
		attribute.String("messaging.system", "spmesh"),
		attribute.String("messaging.operation.name", op),
	}
	if dest != "" {
		a = append(a, attribute.String("messaging.destination.name", dest))
	}
	return a
}

// The start options of each span kind, made once.
var (
	startClient   = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
	startServer   = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	startProducer = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)}
	startConsumer = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
)

// endNothing ends a span that records nothing.
func endNothing(error) {}

// endFunc sets the attributes of a recording span and returns the function
// that ends it. A span that does not record (sampled out) costs no
// attributes and no closure.
func endFunc(span trace.Span, op, dest string) func(error) {
	if !span.IsRecording() {
		span.End()
		return endNothing
	}
	span.SetAttributes(attrs(op, dest)...)
	return func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}
