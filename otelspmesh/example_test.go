package otelspmesh_test

import (
	"context"
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/spmesh/spmesh/otelspmesh"
	"github.com/spmesh/spmesh/pubsub"
)

// One tracer for every socket of the process; a subscriber's message
// carries the consumer span, from which its processing continues the
// publisher's trace.
func ExampleNewTracer() {
	tp := sdktrace.NewTracerProvider() // plus an exporter: sdktrace.WithBatcher(...)
	defer tp.Shutdown(context.Background())
	tr := otelspmesh.NewTracer(otelspmesh.WithTracerProvider(tp))

	sub, err := pubsub.NewSubscriber(pubsub.WithTracer(tr), pubsub.WithListen("inproc://example-otel"),
		pubsub.WithSubscribe("images.>"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close()
	go func() {
		for m, err := range sub.All(context.Background()) {
			if err != nil {
				return
			}
			ctx, span := tp.Tracer("app").Start(m.Context(), "resize")
			_ = ctx // the processing of m, in the publisher's trace
			span.End()
		}
	}()
	fmt.Println("traced")
	// Output: traced
}
