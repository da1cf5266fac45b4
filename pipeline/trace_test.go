package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pipeline"
)

// fakeTracer stands for a tracing system (no OpenTelemetry here): Send
// adds a "trace" header naming a new trace unless the header it is given
// carries one already (then the send continues that trace), and records
// every header it was given and every outcome.
type fakeTracer struct {
	mu    sync.Mutex
	n     int
	sends []spmesh.Header // the headers given to Send
	ends  []error
	recv  []spmesh.Header // the headers given to Receive
}

func (f *fakeTracer) Send(ctx context.Context, op, dest string, h spmesh.Header) (context.Context, spmesh.Header, func(error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sends = append(f.sends, maps.Clone(h))
	out := maps.Clone(h)
	if out == nil {
		out = spmesh.Header{}
	}
	if out["trace"] == "" {
		f.n++
		out["trace"] = fmt.Sprint("T", f.n)
	}
	return ctx, out, func(err error) {
		f.mu.Lock()
		f.ends = append(f.ends, err)
		f.mu.Unlock()
	}
}

func (f *fakeTracer) Receive(ctx context.Context, op, dest string, h spmesh.Header) (context.Context, func(error)) {
	f.mu.Lock()
	f.recv = append(f.recv, maps.Clone(h))
	f.mu.Unlock()
	return ctx, func(error) {}
}

// A job's span covers the job, not each delivery: one Send for a job
// nacked once then acked, ended once with the ack; every delivery carries
// its trace context.
func TestTraceOneSpanPerJob(t *testing.T) {
	tr := &fakeTracer{}
	var mu sync.Mutex
	var got []string
	w := mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		mu.Lock()
		got = append(got, j.Header["trace"])
		mu.Unlock()
		if j.Attempt == 1 {
			return errors.New("again")
		}
		return nil
	}))
	p := mustProducer(t, pipeline.WithTracer(tr), pipeline.WithDial(listen(t, w, testutil.Inproc(t))))
	workerPeers(t, p, 1)
	if err := p.Produce(ctxT(t, 10*time.Second), "x"); err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if len(tr.sends) != 1 || len(tr.ends) != 1 || tr.ends[0] != nil {
		t.Fatalf("tracer: got %d sends ended with %v, want 1 send ended with nil", len(tr.sends), tr.ends)
	}
	if len(got) != 2 || got[0] != "T1" || got[1] != "T1" {
		t.Fatalf("deliveries carried traces %q, want [T1 T1]", got)
	}
}

// A job recovered from the outbox after a restart continues its trace:
// its trace context is stored with its headers, the tracer's Send is given
// them again, and the worker gets the same trace.
func TestOutboxRecoveredKeepsTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	tr := &fakeTracer{}
	p, err := pipeline.NewProducer(pipeline.WithOutbox(path), pipeline.WithWaitForWorker(), pipeline.WithTracer(tr))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 20*time.Second)
	id := pipeline.JobIDOf("traced")
	if _, err := p.Submit(ctx, pipeline.Task{ID: id, Header: spmesh.Header{"k": "v"}, Body: "b"}); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); !errors.Is(err, pipeline.ErrUnacked) {
		t.Fatalf("close: got %v, want ErrUnacked", err)
	}

	s := newSeen()
	var mu sync.Mutex
	var traces []string
	w := mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		mu.Lock()
		traces = append(traces, j.Header["trace"])
		mu.Unlock()
		return s.handler().ServeJob(ctx, j)
	}))
	tr2 := &fakeTracer{n: 100}
	p2 := mustProducer(t, pipeline.WithOutbox(path), pipeline.WithDial(listen(t, w, "tcp")), pipeline.WithTracer(tr2))
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := p2.Stats().Acked; got != 1 {
			return fmt.Errorf("acked: got %d, want the recovered job", got)
		}
		return nil
	})
	tr2.mu.Lock()
	defer tr2.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if len(tr2.sends) != 1 || tr2.sends[0]["trace"] != "T1" || tr2.sends[0]["k"] != "v" {
		t.Fatalf("recovered job: Send got headers %v, want the stored ones, k=v and trace=T1", tr2.sends)
	}
	if len(traces) != 1 || traces[0] != "T1" {
		t.Fatalf("worker got traces %q, want [T1]", traces)
	}
	if s.bodies[id] != "b|v" {
		t.Fatalf("worker got %q, want body b and header k=v", s.bodies[id])
	}
}
