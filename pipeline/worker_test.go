package pipeline_test

import (
	"context"
	"errors"
	"fmt"
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
	"go.nanomsg.org/mangos/v3/protocol/req"
)

// counter is a handler that counts the runs of each job id.
type counter struct {
	mu   sync.Mutex
	runs map[spmesh.ID]int
}

func (c *counter) ServeJob(ctx context.Context, j *pipeline.Job) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.runs == nil {
		c.runs = map[spmesh.ID]int{}
	}
	c.runs[j.ID]++
	return nil
}

func (c *counter) count(id spmesh.ID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[id]
}

func TestDedup(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		var c counter
		p, w := pair(t, addr, &c, nil, pipeline.WithDedup(2, 0))
		ctx := ctxT(t, 10*time.Second)
		produce := func(key string) {
			t.Helper()
			r, err := p.Submit(ctx, pipeline.Task{ID: pipeline.JobIDOf(key), Body: key})
			if err == nil {
				err = r.Wait(ctx)
			}
			if err != nil {
				t.Fatalf("job %s: got %v, want acked", key, err)
			}
		}
		for _, k := range []string{"a", "a", "b", "a", "c", "a"} {
			produce(k)
		}
		// a, a (duplicate), b, a (duplicate), c (evicts a: size 2), a (runs).
		for k, want := range map[string]int{"a": 2, "b": 1, "c": 1} {
			if got := c.count(pipeline.JobIDOf(k)); got != want {
				t.Errorf("runs of %s: got %d, want %d", k, got, want)
			}
		}
		if st := w.Stats(); st.Duplicates != 2 || st.Acked != 4 || st.Received != 6 {
			t.Fatalf("worker stats: got %+v, want 2 duplicates, 4 acked, 6 received", st)
		}
		if st := p.Stats(); st.Acked != 6 {
			t.Fatalf("producer stats: got %+v, want 6 acked (duplicates are acked too)", st)
		}
	})
}

// TestDedupTTL: an id is forgotten once its ttl has passed.
func TestDedupTTL(t *testing.T) {
	var c counter
	p, w := pair(t, testutil.Inproc(t), &c, nil, pipeline.WithDedup(100, 20*time.Millisecond))
	ctx := ctxT(t, 10*time.Second)
	id := pipeline.JobIDOf("x")
	testutil.Eventually(t, 5*time.Second, func() error {
		r, err := p.Submit(ctx, pipeline.Task{ID: id, Body: 1})
		if err != nil {
			return err
		}
		if err := r.Wait(ctx); err != nil {
			return err
		}
		if n := c.count(id); n != 2 {
			return fmt.Errorf("runs: got %d, want 2 (once, then again after the ttl)", n)
		}
		return nil
	})
	if st := w.Stats(); st.Duplicates == 0 {
		t.Fatalf("worker stats: got %+v, want duplicates within the ttl", st)
	}
}

// TestDedupConcurrent: a second delivery of a job that is running waits for
// the first; an ack makes it a duplicate, a failure lets it run.
func TestDedupConcurrent(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprint("firstFails=", fail), func(t *testing.T) {
			gate := make(chan struct{})
			var runs atomic.Int64
			p, w := pair(t, testutil.Inproc(t), pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
				n := runs.Add(1)
				if n == 1 {
					<-gate
					if fail {
						return errors.New("first run fails")
					}
				}
				return nil
			}), []pipeline.Option{pipeline.WithMaxAttempts(1)}, pipeline.WithDedup(10, 0), pipeline.WithConcurrency(4))
			ctx := ctxT(t, 10*time.Second)
			task := pipeline.Task{ID: pipeline.JobIDOf("same"), Body: 1}
			r1, err := p.Submit(ctx, task)
			if err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 5*time.Second, func() error {
				if n := runs.Load(); n != 1 {
					return fmt.Errorf("runs: got %d, want 1", n)
				}
				return nil
			})
			r2, err := p.Submit(ctx, task)
			if err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 5*time.Second, func() error {
				if n := w.Stats().InFlight; n != 2 {
					return fmt.Errorf("deliveries at the worker: got %d, want 2", n)
				}
				return nil
			})
			close(gate)
			err1, err2 := r1.Wait(ctx), r2.Wait(ctx)
			st := w.Stats()
			if fail {
				if err1 == nil || err2 != nil || runs.Load() != 2 || st.Duplicates != 0 {
					t.Fatalf("got %v, %v, %d runs, %d duplicates, want the first failed, the second run and acked", err1, err2, runs.Load(), st.Duplicates)
				}
				return
			}
			if err1 != nil || err2 != nil || runs.Load() != 1 || st.Duplicates != 1 {
				t.Fatalf("got %v, %v, %d runs, %d duplicates, want both acked, one run, one duplicate", err1, err2, runs.Load(), st.Duplicates)
			}
		})
	}
}

// TestWorkerDrain: Drain finishes the job in hand; the job waiting at the
// draining worker goes to another one.
func TestWorkerDrain(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		started := make(chan struct{}, 1)
		release := make(chan struct{})
		a := mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
			started <- struct{}{}
			<-release
			return nil
		}), pipeline.WithConcurrency(1))
		p := mustProducer(t, pipeline.WithDial(listen(t, a, suffix(addr, 0))))
		workerPeers(t, p, 1)
		ctx := ctxT(t, 20*time.Second)
		r1, err := p.ProduceAsync(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		<-started
		r2, err := p.ProduceAsync(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, func() error {
			if st := p.Stats(); st.Sent != 2 {
				return fmt.Errorf("deliveries sent: got %d, want 2", st.Sent)
			}
			return nil
		})
		var bRuns atomic.Int64
		b := mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
			bRuns.Add(1)
			return nil
		}))
		if err := p.Dial(listen(t, b, suffix(addr, 1))); err != nil {
			t.Fatal(err)
		}
		workerPeers(t, p, 2)
		drained := make(chan error, 1)
		go func() { drained <- a.Drain(ctx) }()
		testutil.Eventually(t, 10*time.Second, func() error {
			if !a.Stats().Draining {
				return errors.New("a not draining yet")
			}
			return nil
		})
		close(release)
		if err := <-drained; err != nil {
			t.Fatalf("Drain: got %v, want nil", err)
		}
		if err := r1.Wait(ctx); err != nil || r1.Attempts() != 1 {
			t.Fatalf("job in hand: got %v after %d attempts, want acked by the draining worker at once", err, r1.Attempts())
		}
		if err := r2.Wait(ctx); err != nil || r2.Attempts() != 2 || bRuns.Load() != 1 {
			t.Fatalf("waiting job: got %v after %d attempts (%d runs at b), want acked by the other worker at attempt 2", err, r2.Attempts(), bRuns.Load())
		}
		if err := a.Drain(ctx); !errors.Is(err, spmesh.ErrClosed) {
			t.Fatalf("Drain after Drain: got %v, want ErrClosed", err)
		}
	})
}

func TestWorkerPanicNacks(t *testing.T) {
	p, w := pair(t, testutil.Inproc(t), pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		if j.Attempt == 1 {
			panic("boom")
		}
		return nil
	}), nil)
	r, err := p.ProduceAsync(ctxT(t, 10*time.Second), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Wait(ctxT(t, 10*time.Second)); err != nil || r.Attempts() != 2 {
		t.Fatalf("got %v after %d attempts, want acked at attempt 2", err, r.Attempts())
	}
	if st := w.Stats(); st.Panics != 1 || st.HandlerErrors != 1 || st.Acked != 1 {
		t.Fatalf("worker stats: got %+v, want 1 panic, 1 nack, 1 ack", st)
	}
}

// TestTypedHandler: the job arrives decoded; one that does not decode is
// nacked with a decode error.
func TestTypedHandler(t *testing.T) {
	got := make(chan job, 1)
	p, _ := pair(t, testutil.Inproc(t), pipeline.TypedHandler(func(ctx context.Context, j *pipeline.Job, v job) error {
		got <- v
		return nil
	}), []pipeline.Option{pipeline.WithMaxAttempts(1)})
	ctx := ctxT(t, 10*time.Second)
	if err := p.Produce(ctx, job{"cat.jpg", 3}); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != (job{"cat.jpg", 3}) {
		t.Fatalf("got %+v, want cat.jpg 3", v)
	}
	err := p.Produce(ctx, "not a job")
	var re *spmesh.RemoteError
	if !errors.Is(err, pipeline.ErrDeadLetter) || !errors.As(err, &re) || !strings.Contains(re.Message, "decode") {
		t.Fatalf("undecodable job: got %v, want a dead letter with a remote decode error", err)
	}
}

// TestWorkerHostile sends garbage to a worker from a raw mangos REQ peer:
// each frame is nacked and counted, and the worker keeps serving.
func TestWorkerHostile(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		var c counter
		w := mustWorker(t, &c)
		addr = listen(t, w, addr)
		raw, err := req.NewSocket()
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		for k, v := range map[string]any{mangos.OptionRetryTime: time.Duration(0), mangos.OptionRecvDeadline: 10 * time.Second} {
			if err := raw.SetOption(k, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := raw.Dial(addr); err != nil {
			t.Fatal(err)
		}
		frames := append(testutil.Garbage(),
			append(wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindRequest, ID: wire.ID{1}}), 0xc0),
			append(wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindPush, ID: wire.ID{1}}), 0xc0))
		for i, f := range frames {
			if err := raw.Send(f); err != nil {
				t.Fatal(err)
			}
			b, err := raw.Recv()
			if err != nil {
				t.Fatalf("frame %d: no answer: %v", i, err)
			}
			var env wire.Msg
			if err := wire.Decode(b, &env); err != nil || env.Kind != wire.KindAck || env.Flags&wire.FlagNack == 0 || env.Err == "" {
				t.Errorf("frame %d %q: got %+v, %v, want a nack", i, f, env, err)
			}
		}
		if err := raw.Send(append(wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindJob, ID: wire.ID{2}, Attempt: 1}), 0xc0)); err != nil {
			t.Fatal(err)
		}
		b, err := raw.Recv()
		var env wire.Msg
		if err != nil || wire.Decode(b, &env) != nil || env.Kind != wire.KindAck || env.Flags != 0 || env.Err != "" || env.ID != (wire.ID{2}) {
			t.Fatalf("good job after garbage: got %+v, %v, want an ack for id 2", env, err)
		}
		if st := w.Stats(); st.DecodeErrors != uint64(len(frames)) || st.Acked != 1 {
			t.Fatalf("worker stats: got %+v, want %d decode errors, 1 acked", st, len(frames))
		}
	})
}

func TestWorkerClosed(t *testing.T) {
	w := mustWorker(t, &counter{}, pipeline.WithListen(testutil.Inproc(t)))
	if len(w.Addrs()) != 1 {
		t.Fatalf("addrs: got %v, want one", w.Addrs())
	}
	if err := w.Close(); err != nil {
		t.Fatalf("first Close: got %v, want nil", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: got %v, want nil", err)
	}
	if _, err := w.Listen(testutil.Inproc(t)); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Listen after Close: got %v, want ErrClosed", err)
	}
	if err := w.Dial(testutil.Inproc(t)); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Dial after Close: got %v, want ErrClosed", err)
	}
	if err := w.Drain(context.Background()); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Drain after Close: got %v, want ErrClosed", err)
	}
}
