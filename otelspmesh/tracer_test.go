package otelspmesh_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/otelspmesh"
	"github.com/spmesh/spmesh/pipeline"
	"github.com/spmesh/spmesh/pubsub"
	"github.com/spmesh/spmesh/reqrep"
	"github.com/spmesh/spmesh/survey"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

const wait = 10 * time.Second

// recorder returns a tracer recording into an in-memory exporter, and
// the provider's tracer for the test's own root span.
func recorder(t *testing.T) (*otelspmesh.Tracer, *tracetest.InMemoryExporter, trace.Tracer) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return otelspmesh.NewTracer(otelspmesh.WithTracerProvider(tp)), exp, tp.Tracer("test")
}

// spans waits until the exporter holds n spans of trace id and returns
// them by name and kind ("request/client").
func spans(t *testing.T, exp *tracetest.InMemoryExporter, id trace.TraceID, n int) map[string]tracetest.SpanStub {
	t.Helper()
	var got tracetest.SpanStubs
	testutil.Eventually(t, wait, func() error {
		got = got[:0]
		for _, s := range exp.GetSpans() {
			if s.SpanContext.TraceID() == id {
				got = append(got, s)
			}
		}
		if len(got) < n {
			return fmt.Errorf("%d spans of the trace exported, want %d: %v", len(got), n, names(got))
		}
		return nil
	})
	if len(got) != n {
		t.Fatalf("%d spans exported, want %d: %v", len(got), n, names(got))
	}
	m := make(map[string]tracetest.SpanStub, n)
	for _, s := range got {
		m[s.Name+"/"+s.SpanKind.String()] = s
	}
	if len(m) != n {
		t.Fatalf("spans not distinct by name and kind: %v", names(got))
	}
	return m
}

func names(ss tracetest.SpanStubs) []string {
	var n []string
	for _, s := range ss {
		n = append(n, s.Name+"/"+s.SpanKind.String())
	}
	return n
}

// chain checks that each span is the child of the one before, the first
// of root, all in the trace of root.
func chain(t *testing.T, root trace.SpanContext, got map[string]tracetest.SpanStub, order ...string) {
	t.Helper()
	parent := root
	for _, key := range order {
		s, ok := got[key]
		if !ok {
			t.Fatalf("no span %q among %v", key, slicesKeys(got))
		}
		if s.SpanContext.TraceID() != root.TraceID() {
			t.Errorf("span %q: trace %s, want %s", key, s.SpanContext.TraceID(), root.TraceID())
		}
		if s.Parent.SpanID() != parent.SpanID() {
			t.Errorf("span %q: parent %s, want %s", key, s.Parent.SpanID(), parent.SpanID())
		}
		received := strings.HasSuffix(key, "/server") || strings.HasSuffix(key, "/consumer")
		if s.Parent.IsRemote() != received {
			t.Errorf("span %q: parent remote %v, want %v (received spans continue the context of a header)", key, s.Parent.IsRemote(), received)
		}
		parent = s.SpanContext
	}
}

func slicesKeys(m map[string]tracetest.SpanStub) []string {
	var k []string
	for key := range maps.Keys(m) {
		k = append(k, key)
	}
	return k
}

func fatal(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func closer(t *testing.T, c interface{ Close() error }) {
	t.Cleanup(func() { _ = c.Close() })
}

// A request whose handler submits a job whose worker publishes a message
// shows as one trace: client -> server -> producer -> consumer ->
// producer -> consumer, each span the child of the one before, the trace
// context carried in the headers over real TCP.
func TestTraceRequestJobPublish(t *testing.T) {
	tr, exp, test := recorder(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	pub, err := pubsub.NewPublisher(pubsub.WithTracer(tr))
	fatal(t, err)
	closer(t, pub)
	paddr, err := pub.Listen("tcp://127.0.0.1:0")
	fatal(t, err)
	sub, err := pubsub.NewSubscriber(pubsub.WithTracer(tr), pubsub.WithDial(paddr))
	fatal(t, err)
	closer(t, sub)
	fatal(t, sub.Subscribe("chain.done"))

	w, err := pipeline.NewWorker(pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		return pub.Publish(ctx, "chain.done", "published")
	}), pipeline.WithTracer(tr))
	fatal(t, err)
	closer(t, w)
	waddr, err := w.Listen("tcp://127.0.0.1:0")
	fatal(t, err)
	prod, err := pipeline.NewProducer(pipeline.WithTracer(tr), pipeline.WithDial(waddr), pipeline.WithWaitForWorker())
	fatal(t, err)
	closer(t, prod)

	rp, err := reqrep.NewReplier(reqrep.HandlerFunc(func(ctx context.Context, r *reqrep.Request) (any, error) {
		return "ok", prod.Produce(ctx, "job")
	}), reqrep.WithTracer(tr))
	fatal(t, err)
	closer(t, rp)
	raddr, err := rp.Listen("tcp://127.0.0.1:0")
	fatal(t, err)
	rq, err := reqrep.NewRequester(reqrep.WithTracer(tr), reqrep.WithDial(raddr), reqrep.WithWaitForReplier())
	fatal(t, err)
	closer(t, rq)

	connected(t, pub, sub, "chain.probe")

	ctx, root := test.Start(ctx, "root", trace.WithSpanKind(trace.SpanKindInternal))
	var reply string
	if err := rq.Request(ctx, "go", &reply); err != nil || reply != "ok" {
		t.Fatalf("request: %q, %v", reply, err)
	}
	root.End()
	m, err := sub.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Topic != "chain.done" {
		t.Fatalf("got topic %q", m.Topic)
	}
	if got, want := trace.SpanContextFromContext(m.Context()).TraceID(), root.SpanContext().TraceID(); got != want {
		t.Errorf("Message.Context: trace %s, want %s", got, want)
	}
	if m.Header.Get("traceparent") == "" {
		t.Errorf("no traceparent in the message's headers: %v", m.Header)
	}
	got := spans(t, exp, root.SpanContext().TraceID(), 7)
	chain(t, root.SpanContext(), got,
		"request/client", "request/server", "job/producer", "job/consumer",
		"publish chain.done/producer", "publish chain.done/consumer")
}

// connected publishes probes on topic until s receives one, then drains
// the probes in flight.
func connected(t *testing.T, p *pubsub.Publisher, s *pubsub.Subscriber, topic string) {
	t.Helper()
	if err := s.Subscribe(topic); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, func() error {
		if err := p.Publish(context.Background(), topic, "probe"); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := s.Next(ctx)
		return err
	})
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		m, err := s.Next(ctx)
		cancel()
		if err != nil {
			return
		}
		if m.Topic != topic {
			t.Fatalf("unexpected message on %q before the test", m.Topic)
		}
	}
}

// A survey and a push are traced too: the respondent's handler runs in
// the server span of the surveyor's client span, the puller's message
// carries the consumer span of the pusher's producer span; the caller's
// header map is not modified.
func TestTraceSurveyPush(t *testing.T) {
	tr, exp, test := recorder(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	sv, err := survey.NewSurveyor(survey.WithTracer(tr))
	fatal(t, err)
	closer(t, sv)
	saddr, err := sv.Listen("tcp://127.0.0.1:0")
	fatal(t, err)
	var inHandler trace.SpanContext
	rs, err := survey.NewRespondent(survey.HandlerFunc(func(ctx context.Context, q *survey.Question) (any, error) {
		inHandler = trace.SpanContextFromContext(ctx)
		return "here", nil
	}), survey.WithTracer(tr), survey.WithName("r1"), survey.WithDial(saddr))
	fatal(t, err)
	closer(t, rs)
	pl, err := pipeline.NewPuller(pipeline.WithTracer(tr))
	fatal(t, err)
	closer(t, pl)
	laddr, err := pl.Listen("tcp://127.0.0.1:0")
	fatal(t, err)
	ps, err := pipeline.NewPusher(pipeline.WithTracer(tr), pipeline.WithDial(laddr))
	fatal(t, err)
	closer(t, ps)
	fatal(t, sv.WaitPeers(ctx, 1))

	ctx, root := test.Start(ctx, "root", trace.WithSpanKind(trace.SpanKindInternal))
	h := spmesh.Header{"app": "1"}
	res, err := sv.SurveyHeader(ctx, h, "who", survey.WithExpect("r1"))
	fatal(t, err)
	n := 0
	for _, err := range res.All(ctx) {
		fatal(t, err)
		n++
	}
	fatal(t, res.Close())
	if n != 1 {
		t.Fatalf("%d answers, want 1", n)
	}
	fatal(t, ps.PushHeader(ctx, h, "job"))
	m, err := pl.Next(ctx)
	fatal(t, err)
	root.End()
	if len(h) != 1 {
		t.Errorf("Survey or PushHeader modified the caller's header: %v", h)
	}
	if m.Header.Get("app") != "1" || m.Header.Get("traceparent") == "" {
		t.Errorf("pulled headers %v: want app and traceparent", m.Header)
	}
	got := spans(t, exp, root.SpanContext().TraceID(), 5)
	chain(t, root.SpanContext(), got, "survey/client", "survey/server")
	chain(t, root.SpanContext(), got, "push/producer", "push/consumer")
	if !inHandler.Equal(got["survey/server"].SpanContext) {
		t.Errorf("the respondent's handler ran in %v, want the server span", inHandler)
	}
	if !trace.SpanContextFromContext(m.Context()).Equal(got["push/consumer"].SpanContext) {
		t.Errorf("Message.Context carries %v, want the consumer span", trace.SpanContextFromContext(m.Context()))
	}
}

// A handler error ends the server span, and the client's, with status
// Error.
func TestTraceRequestError(t *testing.T) {
	tr, exp, test := recorder(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	rp, err := reqrep.NewReplier(reqrep.HandlerFunc(func(ctx context.Context, r *reqrep.Request) (any, error) {
		return nil, spmesh.Errorf(42, "refused")
	}), reqrep.WithTracer(tr))
	fatal(t, err)
	closer(t, rp)
	raddr, err := rp.Listen("tcp://127.0.0.1:0")
	fatal(t, err)
	rq, err := reqrep.NewRequester(reqrep.WithTracer(tr), reqrep.WithDial(raddr), reqrep.WithWaitForReplier())
	fatal(t, err)
	closer(t, rq)
	ctx, root := test.Start(ctx, "root", trace.WithSpanKind(trace.SpanKindInternal))
	if err := rq.Request(ctx, "go", nil); err == nil {
		t.Fatal("request did not fail")
	}
	root.End()
	got := spans(t, exp, root.SpanContext().TraceID(), 3)
	for _, k := range []string{"request/client", "request/server"} {
		if got[k].Status.Code.String() != "Error" {
			t.Errorf("span %s: status %v, want Error", k, got[k].Status)
		}
	}
}
