package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/pipeline"
	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/rep"
)

func TestProduceAck(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		var mu sync.Mutex
		var seen []*pipeline.Job
		p, w := pair(t, addr, pipeline.TypedHandler(func(ctx context.Context, j *pipeline.Job, v job) error {
			if v.Image != "img" || j.Header.Get("trace") != fmt.Sprint(v.N) {
				return fmt.Errorf("got job %+v with header %v", v, j.Header)
			}
			mu.Lock()
			seen = append(seen, &pipeline.Job{ID: j.ID, Attempt: j.Attempt, Time: j.Time, Deadline: j.Deadline})
			mu.Unlock()
			return nil
		}), nil)
		ctx := ctxT(t, 10*time.Second)
		for i := range 50 {
			r, err := p.Submit(ctx, pipeline.Task{Header: spmesh.Header{"trace": fmt.Sprint(i)}, Body: job{"img", i}})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Wait(ctx); err != nil {
				t.Fatalf("job %d: got %v, want acked", i, err)
			}
			if r.Attempts() != 1 || r.Err() != nil || r.ID().IsZero() {
				t.Fatalf("job %d: got %d attempts, err %v, id %s, want 1, nil, an id", i, r.Attempts(), r.Err(), r.ID())
			}
		}
		if err := p.Produce(ctx, job{"img", 50}); err == nil {
			t.Fatal("job without its header: got acked, want a nack") // the handler checks the header
		}
		ids := map[spmesh.ID]bool{}
		for _, j := range seen {
			if ids[j.ID] || j.Attempt != 1 || j.Time.IsZero() || j.Deadline.IsZero() {
				t.Fatalf("got job %+v, want a fresh id, attempt 1, a time and the ctx deadline", j)
			}
			ids[j.ID] = true
		}
		ps, ws := p.Stats(), w.Stats()
		if ps.Produced != 51 || ps.Acked != 50 || ps.RemoteErrors != 5 || ps.DeadLettered != 1 || ps.InFlight != 0 || ps.Peers != 1 {
			t.Fatalf("producer stats: got %+v, want 51 produced, 50 acked, 5 nacked, 1 dead letter", ps)
		}
		if ws.Acked != 50 || ws.HandlerErrors != 5 || ws.Received != 55 || ws.InFlight != 0 {
			t.Fatalf("worker stats: got %+v, want 50 acked, 5 nacked, 55 received", ws)
		}
	})
}

// TestProduceAsyncWindow: at most WithMaxInFlight jobs are in flight; the
// next ProduceAsync blocks until one is acked.
func TestProduceAsyncWindow(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		gate := make(chan struct{})
		p, _ := pair(t, addr, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
			select {
			case <-gate:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}), []pipeline.Option{pipeline.WithMaxInFlight(4)}, pipeline.WithConcurrency(8))
		ctx := ctxT(t, 20*time.Second)
		var rs []*pipeline.Result
		for i := range 4 {
			r, err := p.ProduceAsync(ctx, i)
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, r)
		}
		if st := p.Stats(); st.InFlight != 4 {
			t.Fatalf("in flight: got %d, want 4", st.InFlight)
		}
		short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		defer cancel()
		if _, err := p.ProduceAsync(short, 4); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("fifth job, window of 4 full: got %v, want context.DeadlineExceeded", err)
		}
		if err := rs[0].Err(); err != nil {
			t.Fatalf("pending job's Err: got %v, want nil", err)
		}
		select {
		case <-rs[0].Done():
			t.Fatal("job done before its handler returned")
		default:
		}
		// The blocked ProduceAsync goes through once a job is acked.
		fifth := make(chan error, 1)
		go func() {
			r, err := p.ProduceAsync(ctx, 5)
			if err == nil {
				err = r.Wait(ctx)
			}
			fifth <- err
		}()
		close(gate)
		for i, r := range rs {
			if err := r.Wait(ctx); err != nil {
				t.Fatalf("job %d: %v", i, err)
			}
		}
		if err := <-fifth; err != nil {
			t.Fatalf("job after the window freed: got %v, want acked", err)
		}
	})
}

// TestLoadSpreadsOverWorkers: one producer with a window keeps 3 workers
// busy; every job is acked once and each worker takes a share.
func TestLoadSpreadsOverWorkers(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		const n = 3000
		var counts [3]atomic.Int64
		var ws []*pipeline.Worker
		for i := range 3 {
			ws = append(ws, mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
				counts[i].Add(1)
				return nil
			})))
		}
		p := mustProducer(t, append(dialAll(t, addr, ws), pipeline.WithMaxInFlight(32))...)
		workerPeers(t, p, 3)
		ctx := ctxT(t, 30*time.Second)
		rs := make([]*pipeline.Result, 0, n)
		for i := range n {
			r, err := p.ProduceAsync(ctx, job{"img", i})
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, r)
		}
		for i, r := range rs {
			if err := r.Wait(ctx); err != nil {
				t.Fatalf("job %d: %v", i, err)
			}
		}
		var sum int64
		for i := range counts {
			c := counts[i].Load()
			t.Logf("worker %d: %d jobs", i, c)
			if c < n/10 {
				t.Errorf("worker %d: got %d jobs, want a fair share of %d (at least %d)", i, c, n, n/10)
			}
			sum += c
		}
		if sum != n {
			t.Fatalf("jobs run: got %d, want %d (each once)", sum, n)
		}
		if st := p.Stats(); st.Acked != n || st.Resent != 0 {
			t.Fatalf("producer stats: got %+v, want %d acked, 0 resent", st, n)
		}
	})
}

// TestNackRedelivers: a failed job comes back with the same id and the
// next attempt number.
func TestNackRedelivers(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		var mu sync.Mutex
		var got []string
		p, _ := pair(t, addr, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
			mu.Lock()
			got = append(got, fmt.Sprintf("%s/%d", j.ID, j.Attempt))
			mu.Unlock()
			if j.Attempt < 3 {
				return spmesh.Errorf(503, "busy")
			}
			return nil
		}), nil)
		r, err := p.ProduceAsync(ctxT(t, 10*time.Second), "x")
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Wait(ctxT(t, 10*time.Second)); err != nil || r.Attempts() != 3 {
			t.Fatalf("got %v after %d attempts, want acked at attempt 3", err, r.Attempts())
		}
		id := r.ID().String()
		mu.Lock()
		defer mu.Unlock()
		if want := []string{id + "/1", id + "/2", id + "/3"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("deliveries: got %v, want %v", got, want)
		}
		if st := p.Stats(); st.RemoteErrors != 2 || st.Resent != 2 || st.Sent != 3 || st.Acked != 1 {
			t.Fatalf("stats: got %+v, want 2 nacked, 2 resent, 3 sent, 1 acked", st)
		}
	})
}

// TestAckTimeoutRedelivers: a hung handler does not hold the job: after the
// ack timeout it is delivered again.
func TestAckTimeoutRedelivers(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		const ackTimeout = 100 * time.Millisecond
		hung := make(chan struct{}, 1)
		p, w := pair(t, addr, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
			if j.Attempt == 1 {
				hung <- struct{}{}
				<-ctx.Done() // hangs until the worker closes
				return ctx.Err()
			}
			return nil
		}), []pipeline.Option{pipeline.WithAckTimeout(ackTimeout)}, pipeline.WithConcurrency(2))
		start := time.Now()
		err := p.Produce(ctxT(t, 10*time.Second), "x")
		if took := time.Since(start); err != nil || took < ackTimeout {
			t.Fatalf("got %v after %v, want acked after the ack timeout (%v)", err, took, ackTimeout)
		}
		<-hung
		if st := p.Stats(); st.Timeouts != 1 || st.Resent != 1 || st.Acked != 1 {
			t.Fatalf("stats: got %+v, want 1 timeout, 1 resent, 1 acked", st)
		}
		if st := w.Stats(); st.InFlight != 1 || st.Acked != 1 {
			t.Fatalf("worker stats: got %+v, want the hung handler in flight and 1 acked", st)
		}
	})
}

// TestDeadLetter: a job failing every attempt reaches the dead letter,
// then the caller, never silently dropped.
func TestDeadLetter(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		var dls []*pipeline.DeadLetter
		var calls atomic.Int64
		p, _ := pair(t, addr, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
			calls.Add(1)
			return spmesh.Errorf(42, "cannot do %d", j.Attempt)
		}), []pipeline.Option{pipeline.WithMaxAttempts(3), pipeline.WithDeadLetter(func(dl *pipeline.DeadLetter) {
			dls = append(dls, dl) // one job at a time here
		})})
		r, err := p.Submit(ctxT(t, 10*time.Second), pipeline.Task{Header: spmesh.Header{"k": "v"}, Body: job{"bad", 7}})
		if err != nil {
			t.Fatal(err)
		}
		err = r.Wait(ctxT(t, 10*time.Second))
		var re *spmesh.RemoteError
		if !errors.Is(err, pipeline.ErrDeadLetter) || !errors.As(err, &re) || re.Code != 42 || re.Message != "cannot do 3" {
			t.Fatalf("got %v, want ErrDeadLetter wrapping the last remote error (code 42, attempt 3)", err)
		}
		if calls.Load() != 3 || len(dls) != 1 {
			t.Fatalf("got %d handler calls and %d dead letters, want 3 and 1", calls.Load(), len(dls))
		}
		dl := dls[0]
		v, derr := spmesh.Decode[job](dl)
		if dl.ID != r.ID() || dl.Attempts != 3 || dl.Header.Get("k") != "v" || derr != nil || v.N != 7 || !errors.As(dl.Err, &re) {
			t.Fatalf("dead letter: got %+v (decoded %+v, %v), want job 7, 3 attempts, header and cause", dl, v, derr)
		}
		if st := p.Stats(); st.DeadLettered != 1 || st.RemoteErrors != 3 || st.Acked != 0 || st.InFlight != 0 {
			t.Fatalf("stats: got %+v, want 1 dead letter, 3 nacks", st)
		}
	})
}

// TestDeadLetterDefault: with no dead-letter function the job is logged,
// counted, and reported to the caller; ack timeouts count as failures too.
func TestDeadLetterDefault(t *testing.T) {
	var logs syncBuffer
	addr := testutil.Inproc(t)
	p, _ := pair(t, addr, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		<-ctx.Done() // never acks
		return ctx.Err()
	}), []pipeline.Option{
		pipeline.WithMaxAttempts(2), pipeline.WithAckTimeout(20 * time.Millisecond),
		pipeline.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
	})
	err := p.Produce(ctxT(t, 10*time.Second), "x")
	if !errors.Is(err, pipeline.ErrDeadLetter) || !errors.Is(err, spmesh.ErrTimeout) {
		t.Fatalf("got %v, want ErrDeadLetter wrapping ErrTimeout", err)
	}
	if st := p.Stats(); st.DeadLettered != 1 || st.Timeouts != 2 || st.Resent != 1 {
		t.Fatalf("stats: got %+v, want 1 dead letter, 2 timeouts, 1 resent", st)
	}
	if s := logs.String(); !strings.Contains(s, "level=ERROR") || !strings.Contains(s, "dead-lettered") {
		t.Fatalf("log: got %q, want an error record about the dead letter", s)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestNoWorkers: no worker connected fails fast, unless told to wait.
func TestNoWorkers(t *testing.T) {
	addr := testutil.FreeTCP(t)
	p := mustProducer(t, pipeline.WithDial(addr))
	if err := p.Produce(ctxT(t, 10*time.Second), "x"); !errors.Is(err, spmesh.ErrNoPeers) {
		t.Fatalf("no worker: got %v, want ErrNoPeers", err)
	}
	if _, err := p.ProduceAsync(ctxT(t, 10*time.Second), "x"); !errors.Is(err, spmesh.ErrNoPeers) {
		t.Fatalf("no worker, async: got %v, want ErrNoPeers", err)
	}
	pw := mustProducer(t, pipeline.WithDial(addr), pipeline.WithWaitForWorker())
	short, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := pw.Produce(short, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no worker, waiting: got %v, want context.DeadlineExceeded", err)
	}
	// A worker that comes later gets the waiting job.
	done := make(chan error, 1)
	go func() { done <- pw.Produce(ctxT(t, 20*time.Second), "late") }()
	mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error { return nil }), pipeline.WithListen(addr))
	if err := <-done; err != nil {
		t.Fatalf("job waiting for a worker: got %v, want acked", err)
	}
	if st := p.Stats(); st.Produced != 0 || st.Failed != 0 {
		t.Fatalf("stats of the fast-failing producer: got %+v, want nothing produced", st)
	}
}

// TestWorkerLost: a worker closing with a job in hand (its ack never sent)
// loses the job to another worker.
func TestWorkerLost(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		inHand := make(chan struct{}, 1)
		a := mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
			inHand <- struct{}{}
			<-ctx.Done()
			return nil // too late: the worker is closed, the ack is not sent
		}))
		p := mustProducer(t, pipeline.WithDial(listen(t, a, suffix(addr, 0))))
		workerPeers(t, p, 1)
		r, err := p.ProduceAsync(ctxT(t, 20*time.Second), "x")
		if err != nil {
			t.Fatal(err)
		}
		<-inHand
		b := mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error { return nil }))
		if err := p.Dial(listen(t, b, suffix(addr, 1))); err != nil {
			t.Fatal(err)
		}
		workerPeers(t, p, 2)
		a.Close()
		if err := r.Wait(ctxT(t, 20*time.Second)); err != nil || r.Attempts() != 2 {
			t.Fatalf("got %v after %d attempts, want acked by the other worker at attempt 2", err, r.Attempts())
		}
		if st := p.Stats(); st.Lost != 1 || st.Resent != 1 {
			t.Fatalf("stats: got %+v, want 1 lost, 1 resent", st)
		}
		if st := a.Stats(); st.Acked != 1 || st.Sent != 0 {
			t.Fatalf("closed worker: got %+v, want its handler counted as acked but no ack sent", st)
		}
	})
}

// TestProducerClose: Close abandons the jobs in flight, fails their futures
// with ErrClosed and lists them.
func TestProducerClose(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		started := make(chan struct{}, 3)
		p, _ := pair(t, addr, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}), nil)
		ctx := ctxT(t, 20*time.Second)
		want := map[spmesh.ID]bool{}
		var rs []*pipeline.Result
		for i := range 3 {
			r, err := p.ProduceAsync(ctx, i)
			if err != nil {
				t.Fatal(err)
			}
			want[r.ID()] = true
			rs = append(rs, r)
		}
		for range 3 {
			<-started
		}
		err := p.Close()
		var ue *pipeline.UnackedError
		if !errors.Is(err, pipeline.ErrUnacked) || !errors.As(err, &ue) || len(ue.IDs) != 3 {
			t.Fatalf("Close with 3 jobs in flight: got %v, want an UnackedError listing 3 jobs", err)
		}
		for _, id := range ue.IDs {
			if !want[id] {
				t.Fatalf("unacked ids: got %v, want the 3 jobs produced", ue.IDs)
			}
		}
		for i, r := range rs {
			if err := r.Wait(ctx); !errors.Is(err, spmesh.ErrClosed) {
				t.Fatalf("job %d after Close: got %v, want ErrClosed", i, err)
			}
		}
		if err := p.Close(); err != nil {
			t.Fatalf("second Close: got %v, want nil", err)
		}
		if _, err := p.ProduceAsync(ctx, 1); !errors.Is(err, spmesh.ErrClosed) {
			t.Fatalf("ProduceAsync after Close: got %v, want ErrClosed", err)
		}
		if err := p.Drain(ctx); !errors.Is(err, spmesh.ErrClosed) {
			t.Fatalf("Drain after Close: got %v, want ErrClosed", err)
		}
		if st := p.Stats(); st.Failed != 3 || st.InFlight != 0 {
			t.Fatalf("stats: got %+v, want 3 failed, none in flight", st)
		}
	})
}

// TestProducerDrain: Drain refuses new jobs and returns once those in
// flight are acked.
func TestProducerDrain(t *testing.T) {
	gate := make(chan struct{})
	p, _ := pair(t, testutil.Inproc(t), pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		<-gate
		return nil
	}), nil)
	ctx := ctxT(t, 20*time.Second)
	var rs []*pipeline.Result
	for i := range 5 {
		r, err := p.ProduceAsync(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	drained := make(chan error, 1)
	go func() { drained <- p.Drain(ctx) }()
	testutil.Eventually(t, 10*time.Second, func() error {
		if _, err := p.ProduceAsync(ctx, 99); !errors.Is(err, spmesh.ErrClosed) {
			return fmt.Errorf("ProduceAsync while draining: got %v, want ErrClosed", err)
		}
		return nil
	})
	close(gate)
	if err := <-drained; err != nil {
		t.Fatalf("Drain: got %v, want nil", err)
	}
	for i, r := range rs {
		if err := r.Err(); err != nil {
			t.Fatalf("job %d after Drain: got %v, want acked", i, err)
		}
	}
	// Drain running out of time closes and reports what was left.
	p2, _ := pair(t, testutil.Inproc(t), pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		<-ctx.Done()
		return ctx.Err()
	}), nil)
	if _, err := p2.ProduceAsync(ctx, 1); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := p2.Drain(short); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, pipeline.ErrUnacked) {
		t.Fatalf("Drain past its deadline: got %v, want DeadlineExceeded and ErrUnacked", err)
	}
}

func TestProduceErrors(t *testing.T) {
	p, _ := pair(t, testutil.Inproc(t), pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error { return nil }),
		[]pipeline.Option{pipeline.WithMaxMessageSize(1024)})
	ctx := ctxT(t, 10*time.Second)
	if err := p.Produce(ctx, make([]byte, 2048)); !errors.Is(err, spmesh.ErrTooLarge) {
		t.Errorf("oversized: got %v, want ErrTooLarge", err)
	}
	if err := p.Produce(ctx, make(chan int)); err == nil {
		t.Errorf("unencodable value: got nil, want an error")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.Produce(cancelled, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: got %v, want context.Canceled", err)
	}
	if st := p.Stats(); st.Produced != 0 || st.Failed != 0 {
		t.Errorf("stats: got %+v, want every job refused before it was produced", st)
	}
	if _, err := spmesh.Decode[int]((*pipeline.DeadLetter)(nil)); !errors.Is(err, spmesh.ErrDecode) {
		t.Errorf("nil dead letter: got %v, want ErrDecode", err)
	}
	if _, err := spmesh.Decode[int]((*pipeline.Job)(nil)); !errors.Is(err, spmesh.ErrDecode) {
		t.Errorf("nil job: got %v, want ErrDecode", err)
	}
	if a, b := pipeline.JobIDOf("cat.jpg"), pipeline.JobIDOf("cat.jpg"); a != b || a.IsZero() || a == pipeline.JobIDOf("dog.jpg") {
		t.Errorf("JobIDOf: got %s twice and %s, want stable distinct ids", a, pipeline.JobIDOf("dog.jpg"))
	}
}

func producerPattern() testutil.Pattern {
	h := pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error { return nil })
	return testutil.Pattern{
		Open: func(t *testing.T, addr string) io.Closer {
			return mustProducer(t, pipeline.WithDial(addr), pipeline.WithWaitForWorker(), pipeline.WithMaxAttempts(2))
		},
		// With no worker connected, Produce waits until ctx ends.
		Wait: func(ctx context.Context, s io.Closer) error {
			return s.(*pipeline.Producer).Produce(ctx, job{"img", 1})
		},
		Invalid: map[string]func() error{
			"nil codec":          func() error { _, err := pipeline.NewProducer(pipeline.WithCodec(nil)); return err },
			"bad address":        func() error { _, err := pipeline.NewProducer(pipeline.WithDial("foo://x")); return err },
			"ack timeout < 0":    func() error { _, err := pipeline.NewProducer(pipeline.WithAckTimeout(-1)); return err },
			"max attempts -1":    func() error { _, err := pipeline.NewProducer(pipeline.WithMaxAttempts(-1)); return err },
			"max in flight 0":    func() error { _, err := pipeline.NewProducer(pipeline.WithMaxInFlight(0)); return err },
			"nil dead letter":    func() error { _, err := pipeline.NewProducer(pipeline.WithDeadLetter(nil)); return err },
			"worker-only opt":    func() error { _, err := pipeline.NewProducer(pipeline.WithConcurrency(2)); return err },
			"pusher-only opt":    func() error { _, err := pipeline.NewProducer(pipeline.WithNonBlocking()); return err },
			"nil option":         func() error { _, err := pipeline.NewProducer(nil); return err },
			"nil handler":        func() error { _, err := pipeline.NewWorker(nil); return err },
			"concurrency 0":      func() error { _, err := pipeline.NewWorker(h, pipeline.WithConcurrency(0)); return err },
			"credit 0":           func() error { _, err := pipeline.NewWorker(h, pipeline.WithCredit(0)); return err },
			"credit on producer": func() error { _, err := pipeline.NewProducer(pipeline.WithCredit(4)); return err },
			"dedup size 0":       func() error { _, err := pipeline.NewWorker(h, pipeline.WithDedup(0, 0)); return err },
			"dedup ttl < 0":      func() error { _, err := pipeline.NewWorker(h, pipeline.WithDedup(8, -1)); return err },
			"producer-only opt":  func() error { _, err := pipeline.NewWorker(h, pipeline.WithAckTimeout(time.Second)); return err },
			"worker on puller":   func() error { _, err := pipeline.NewPuller(pipeline.WithDedup(8, 0)); return err },
			"queue zero":         func() error { _, err := pipeline.NewWorker(h, pipeline.WithQueueLen(0)); return err },
			"bad worker addr":    func() error { _, err := pipeline.NewWorker(h, pipeline.WithListen("nope")); return err },
		},
		Hostile: hostileWorker,
	}
}

// hostileWorker answers the producer's jobs with garbage from a raw mangos
// REP peer: each job fails and is delivered again, then dead-lettered with
// an error wrapping ErrDecode; a proper ack still works afterwards.
func hostileWorker(t *testing.T, s io.Closer, addr string, frames [][]byte) {
	p := s.(*pipeline.Producer)
	raw, err := rep.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.Listen(addr); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 20*time.Second)
	answer := func(reply func(env *wire.Msg) []byte) (int, error) {
		r, err := p.ProduceAsync(ctx, "q")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			select {
			case <-r.Done():
				return n, r.Err()
			default:
			}
			if err := raw.SetOption(mangos.OptionRecvDeadline, 50*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			m, err := raw.RecvMsg()
			if errors.Is(err, mangos.ErrRecvTimeout) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			var env wire.Msg
			if err := wire.Decode(m.Body, &env); err != nil || env.Kind != wire.KindJob {
				t.Fatalf("producer sent %+v, %v, want a job", env, err)
			}
			n++
			m.Body = append(m.Body[:0:0], reply(&env)...)
			if err := raw.SendMsg(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, f := range frames {
		n, err := answer(func(*wire.Msg) []byte { return f })
		if !errors.Is(err, spmesh.ErrDecode) || !errors.Is(err, pipeline.ErrDeadLetter) || n != 2 {
			t.Errorf("garbage ack %d %q: got %v after %d deliveries, want ErrDecode, dead letter after 2", i, f, err, n)
		}
	}
	if n, err := answer(func(env *wire.Msg) []byte {
		return append(wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindAck, ID: env.ID}), 0xc0)
	}); err != nil || n != 1 {
		t.Fatalf("proper ack after garbage: got %v after %d deliveries, want acked at once", err, n)
	}
	if st := p.Stats(); st.DecodeErrors != uint64(2*len(frames)) || st.Acked != 1 {
		t.Fatalf("stats: got %+v, want %d decode errors, 1 acked", st, 2*len(frames))
	}
}

// TestNackGoesElsewhere: a job a worker failed is delivered again to
// another worker, even with the pool idle (the least loaded worker is the
// one that just failed it): no job returns to the broken worker, and none
// runs out of its 5 attempts.
func TestNackGoesElsewhere(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		gate := make(chan struct{})
		var mu sync.Mutex
		failed := map[spmesh.ID]int{}
		bad := mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
			<-gate
			mu.Lock()
			failed[j.ID]++
			mu.Unlock()
			return errors.New("broken worker")
		}))
		p := mustProducer(t, pipeline.WithMaxAttempts(5), pipeline.WithDial(listen(t, bad, suffix(addr, 0))))
		workerPeers(t, p, 1)
		ctx := ctxT(t, 20*time.Second)
		// The first job reaches the broken worker alone; the good ones
		// connect before it fails.
		first, err := p.ProduceAsync(ctx, -1)
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, func() error {
			if n := bad.Stats().InFlight; n != 1 {
				return fmt.Errorf("jobs at the broken worker: got %d, want 1", n)
			}
			return nil
		})
		var good [2]atomic.Int64
		for i := range good {
			w := mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
				good[i].Add(1)
				return nil
			}))
			if err := p.Dial(listen(t, w, suffix(addr, i+1))); err != nil {
				t.Fatal(err)
			}
		}
		workerPeers(t, p, 3)
		close(gate)
		if err := first.Wait(ctx); err != nil {
			t.Fatalf("first job: got %v, want acked by a good worker", err)
		}
		// Then a stream of jobs, sequentially: the broken worker gets some.
		for i := 0; bad.Stats().HandlerErrors < 10 && i < 1000; i++ {
			if err := p.Produce(ctx, i); err != nil {
				t.Fatalf("job %d: got %v, want acked by a good worker", i, err)
			}
		}
		st := p.Stats()
		t.Logf("%d jobs, nacked %d, good workers ran %d and %d", st.Produced, st.RemoteErrors, good[0].Load(), good[1].Load())
		if st.DeadLettered != 0 || st.Acked != st.Produced {
			t.Fatalf("stats: got %+v, want every job acked, no dead letter", st)
		}
		if n := bad.Stats().HandlerErrors; n != st.RemoteErrors {
			t.Fatalf("broken worker: got %d nacks, producer saw %d, want equal", n, st.RemoteErrors)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(failed) == 0 || st.RemoteErrors != uint64(len(failed)) {
			t.Fatalf("broken worker: got %d deliveries of %d jobs, want each job failed there once only", st.RemoteErrors, len(failed))
		}
	})
}

// roles is a registry that reports, as a real one does, only the endpoints
// of the service and role watched (the shared test registry reports all).
type roles struct{ *registry }

func (r roles) Watch(service string, role spmesh.Role) (<-chan []spmesh.Endpoint, func(), error) {
	in, stop, err := r.registry.Watch(service, role)
	if err != nil {
		return nil, nil, err
	}
	out := make(chan []spmesh.Endpoint, 1)
	go func() {
		defer close(out)
		for eps := range in {
			var keep []spmesh.Endpoint
			for _, ep := range eps {
				if ep.Service == service && ep.Role == role {
					keep = append(keep, ep)
				}
			}
			out <- keep
		}
	}()
	return out, stop, nil
}

// TestProducerDiscovery: workers advertise themselves as workers, the
// producer dials them and not the pullers of the same service, and a
// draining worker's jobs go to the other one.
func TestProducerDiscovery(t *testing.T) {
	reg := roles{&registry{}}
	var ws []*pipeline.Worker
	var counts [2]atomic.Int64
	for i := range 2 {
		ws = append(ws, mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
			counts[i].Add(1)
			return nil
		}), pipeline.WithDiscovery(reg, "thumbnails")))
	}
	mustPuller(t, pipeline.WithDiscovery(reg, "thumbnails"))
	p := mustProducer(t, pipeline.WithDiscovery(reg, "thumbnails"))
	workerPeers(t, p, 2)
	reg.mu.Lock()
	var workers int
	for _, ep := range reg.eps {
		if ep.Role == spmesh.RoleWorker && ep.Service == "thumbnails" {
			workers++
		}
	}
	reg.mu.Unlock()
	if workers != 2 {
		t.Fatalf("workers advertised: got %d, want 2", workers)
	}
	ctx := ctxT(t, 20*time.Second)
	if err := ws[0].Drain(ctx); err != nil {
		t.Fatal(err)
	}
	workerPeers(t, p, 1)
	for i := range 20 {
		if err := p.Produce(ctx, i); err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
	}
	if a, b := counts[0].Load(), counts[1].Load(); a != 0 || b != 20 {
		t.Fatalf("jobs run: got %d at the drained worker and %d at the other, want 0 and 20", a, b)
	}
}

// TestMaxAttemptsUnbounded: WithMaxAttempts(0) delivers a job until it is
// acked, past DefaultMaxAttempts nacks, as reqrep's 0 resends until ctx
// ends; WithMaxAttempts(1) makes one delivery in all.
func TestMaxAttemptsUnbounded(t *testing.T) {
	const fails = 2 * pipeline.DefaultMaxAttempts
	addr := testutil.Inproc(t)
	var calls atomic.Int64
	p, _ := pair(t, addr, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		if calls.Add(1) <= fails {
			return errors.New("not yet")
		}
		return nil
	}), []pipeline.Option{pipeline.WithMaxAttempts(0)})
	if err := p.Produce(ctxT(t, 30*time.Second), job{"stubborn", 1}); err != nil {
		t.Fatalf("got %v, want the job acked after %d nacks", err, fails)
	}
	if got := calls.Load(); got != fails+1 {
		t.Fatalf("got %d deliveries, want %d", got, fails+1)
	}

	calls.Store(0)
	p1, _ := pair(t, testutil.Inproc(t), pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		calls.Add(1)
		return errors.New("never")
	}), []pipeline.Option{pipeline.WithMaxAttempts(1)})
	if err := p1.Produce(ctxT(t, 30*time.Second), job{"once", 1}); !errors.Is(err, pipeline.ErrDeadLetter) {
		t.Fatalf("got %v, want ErrDeadLetter after one delivery", err)
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("got %d deliveries, want 1", got)
	}
}

// TestProduceHeader: ProduceHeader's headers reach the worker's Job, as
// a Task's do, and the call returns once the job is acked.
func TestProduceHeader(t *testing.T) {
	seen := make(chan spmesh.Header, 1)
	p, _ := pair(t, testutil.Inproc(t), pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		seen <- j.Header.Clone()
		return nil
	}), nil)
	if err := p.ProduceHeader(ctxT(t, 10*time.Second), spmesh.Header{"trace": "t1"}, job{"img", 1}); err != nil {
		t.Fatalf("ProduceHeader: got %v, want acked", err)
	}
	if h := <-seen; h.Get("trace") != "t1" {
		t.Fatalf("worker saw header %v, want trace=t1", h)
	}
	if st := p.Stats(); st.Acked != 1 {
		t.Fatalf("got %d acked, want 1", st.Acked)
	}
}
