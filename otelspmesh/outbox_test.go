package otelspmesh_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pipeline"
)

// A job left in a producer's outbox by a crash (here: Close with no
// worker) is sent by the next producer on the path in the trace it was
// first produced in: the stored headers carry its trace context, and Send
// takes it as the parent when its ctx has no span.
func TestTraceOutboxRecoveredJob(t *testing.T) {
	tr, exp, test := recorder(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	path := filepath.Join(t.TempDir(), "outbox.db")

	p, err := pipeline.NewProducer(pipeline.WithOutbox(path), pipeline.WithWaitForWorker(), pipeline.WithTracer(tr))
	fatal(t, err)
	rctx, root := test.Start(ctx, "root", trace.WithSpanKind(trace.SpanKindInternal))
	if _, err := p.ProduceAsync(rctx, "job"); err != nil {
		t.Fatal(err)
	}
	root.End()
	if err := p.Close(); !errors.Is(err, pipeline.ErrUnacked) {
		t.Fatalf("close: got %v, want ErrUnacked (the job stays in the outbox)", err)
	}

	var inHandler trace.SpanContext
	w, err := pipeline.NewWorker(pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		inHandler = trace.SpanContextFromContext(ctx)
		return nil
	}), pipeline.WithTracer(tr))
	fatal(t, err)
	closer(t, w)
	waddr, err := w.Listen("tcp://127.0.0.1:0")
	fatal(t, err)
	p2, err := pipeline.NewProducer(pipeline.WithOutbox(path), pipeline.WithDial(waddr), pipeline.WithTracer(tr))
	fatal(t, err)
	closer(t, p2)
	// In the job's trace: the root, the first run's producer span (ended
	// by Close), the second run's (its child, ended by the ack) and the
	// worker's consumer span.
	id := root.SpanContext().TraceID()
	var got tracetest.SpanStubs
	testutil.Eventually(t, wait, func() error {
		got = got[:0]
		var n []string
		for _, s := range exp.GetSpans() {
			if s.SpanContext.TraceID() == id {
				got = append(got, s)
				n = append(n, s.Name+"/"+s.SpanKind.String())
			}
		}
		if len(n) != 4 {
			return fmt.Errorf("spans of the job's trace: got %v, want root, job/producer twice, job/consumer", n)
		}
		return nil
	})
	if inHandler.TraceID() != id {
		t.Errorf("recovered job's handler ran in trace %s, want the first run's %s", inHandler.TraceID(), id)
	}
	// The chain: root -> first run's producer span -> second run's ->
	// consumer.
	parent := root.SpanContext().SpanID()
	for _, want := range []trace.SpanKind{trace.SpanKindProducer, trace.SpanKindProducer, trace.SpanKindConsumer} {
		var next *tracetest.SpanStub
		for i := range got {
			if got[i].Parent.SpanID() == parent {
				next = &got[i]
			}
		}
		if next == nil || next.SpanKind != want {
			t.Fatalf("child of span %s: got %+v, want a %v span", parent, next, want)
		}
		parent = next.SpanContext.SpanID()
	}
}
