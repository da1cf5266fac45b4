package otelspmesh_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/otelspmesh"
	"github.com/spmesh/spmesh/pubsub"
)

// BenchmarkPublishBytes: the cost of tracing on the publish path (256 B,
// no subscriber): none, a recording tracer whose spans are dropped, and
// one recording every span (exported to nowhere).
func BenchmarkPublishBytes(b *testing.B) {
	payload := make([]byte, 256)
	run := func(b *testing.B, opts ...pubsub.Option) {
		p, err := pubsub.NewPublisher(append(opts, pubsub.WithListen(testutil.Inproc(b)))...)
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		ctx := context.Background()
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			if err := p.PublishBytes(ctx, "bench.data", nil, payload); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("untraced", func(b *testing.B) { run(b) })
	b.Run("sampled-out", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
		defer tp.Shutdown(context.Background())
		run(b, pubsub.WithTracer(otelspmesh.NewTracer(otelspmesh.WithTracerProvider(tp))))
	})
	b.Run("traced", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(discard{}))
		defer tp.Shutdown(context.Background())
		run(b, pubsub.WithTracer(otelspmesh.NewTracer(otelspmesh.WithTracerProvider(tp))))
	})
}

// discard exports spans to nowhere.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }
