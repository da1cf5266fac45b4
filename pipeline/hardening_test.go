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
)

func produceLatencies(t *testing.T, p *pipeline.Producer, n int) []time.Duration {
	t.Helper()
	ds := make([]time.Duration, 0, n)
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		err := p.Produce(ctx, i)
		cancel()
		if err != nil {
			t.Fatalf("legit job: got %v, want an ack", err)
		}
		ds = append(ds, time.Since(start))
	}
	return ds
}

// A producer that never reads its acks costs a Worker at most one handler,
// for the send timeout: a legit producer's jobs are acked meanwhile, and the
// acks to the attacker are dropped and counted in SendTimeouts.
func TestWorkerSlowReaderIsolated(t *testing.T) {
	addr := testutil.FreeTCP(t)
	w := mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, job *pipeline.Job) error { return nil }),
		pipeline.WithListen(addr), pipeline.WithConcurrency(2), pipeline.WithQueueLen(1), pipeline.WithSendTimeout(5*time.Second))
	p := mustProducer(t, pipeline.WithDial(addr))
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := p.Stats().Peers; n != 1 {
			return fmt.Errorf("got %d workers connected, want 1", n)
		}
		return nil
	})
	const calls = 200
	before := produceLatencies(t, p, calls)

	// The attacker: jobs in batches of 256 frames until its acks back up
	// (acks are small: it takes many), then nothing; it never reads, with a
	// small receive buffer.
	base := w.Stats().Received
	bad := testutil.DialSPBuffer(t, addr, testutil.ProtoReq, 4<<10)
	job := wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindJob, ID: wire.ID{1}, Time: time.Now().UnixNano(), Attempt: 1})
	sent := uint64(0)
	for id := uint32(1); w.Stats().SendTimeouts == 0; {
		if sent > 1<<20 {
			t.Fatalf("got no send timeout after %d jobs", sent)
		}
		for range 256 {
			id++
			if err := bad.Send(job, 0x80000000|id); err != nil {
				t.Fatal(err)
			}
		}
		sent += 256
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		// Every attack job taken, or its connection closed already.
		if st := w.Stats(); st.Received-base < sent && st.LastError == "" {
			return fmt.Errorf("got %d of %d attack jobs taken", st.Received-base, sent)
		}
		return nil
	})
	during := produceLatencies(t, p, calls)
	st := w.Stats()
	p99b, p99d := testutil.Percentile(before, 0.99), testutil.Percentile(during, 0.99)
	t.Logf("legit p99 %v without attack, %v during (ratio %.1f); worker: %d acks sent, %d send timeouts, %d dropped, %d attack jobs",
		p99b, p99d, float64(p99d)/float64(p99b), st.Sent, st.SendTimeouts, st.Dropped, sent)
}

// A job over the worker's limit (within the producer's) is refused by the
// worker with CodeTooLarge: Produce fails at once with ErrTooLarge after one
// delivery, dead-lettered, and the handler never runs.
func TestProduceTooLargeForWorker(t *testing.T) {
	addr := testutil.FreeTCP(t)
	var ran atomic.Int64
	w := mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, job *pipeline.Job) error {
		ran.Add(1)
		return nil
	}), pipeline.WithListen(addr), pipeline.WithMaxMessageSize(1<<20))
	var dead atomic.Int64
	p := mustProducer(t, pipeline.WithDial(addr), pipeline.WithMaxMessageSize(16<<20), pipeline.WithAckTimeout(5*time.Second),
		pipeline.WithDeadLetter(func(*pipeline.DeadLetter) { dead.Add(1) }))
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := p.Stats().Peers; n != 1 {
			return fmt.Errorf("got %d workers connected, want 1", n)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := p.Produce(ctx, make([]byte, 4<<20))
	t.Logf("4 MiB job against a 1 MiB worker: %v in %v", err, time.Since(start))
	if !errors.Is(err, spmesh.ErrTooLarge) || !errors.Is(err, pipeline.ErrDeadLetter) {
		t.Fatalf("got %v, want ErrTooLarge and ErrDeadLetter", err)
	}
	ps, ws := p.Stats(), w.Stats()
	if ps.Sent != 1 || ps.Resent != 0 || ps.TooLarge != 1 || ps.DeadLettered != 1 || dead.Load() != 1 {
		t.Fatalf("producer: got %d sent, %d resent, %d too large, %d dead-lettered (%d seen); want 1, 0, 1, 1 (1)",
			ps.Sent, ps.Resent, ps.TooLarge, ps.DeadLettered, dead.Load())
	}
	if ran.Load() != 0 || ws.Received != 0 || ws.TooLarge != 1 {
		t.Fatalf("worker: got %d run, %d received, %d too large; want 0, 0, 1", ran.Load(), ws.Received, ws.TooLarge)
	}
}

// A job over the producer's own limit is refused before it is sent.
func TestProduceTooLargeLocally(t *testing.T) {
	addr := testutil.FreeTCP(t)
	mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, job *pipeline.Job) error { return nil }), pipeline.WithListen(addr))
	p := mustProducer(t, pipeline.WithDial(addr), pipeline.WithMaxMessageSize(1<<20))
	for _, v := range []any{make([]byte, 2<<20), struct{ B []byte }{make([]byte, 2<<20)}} {
		if _, err := p.ProduceAsync(context.Background(), v); !errors.Is(err, spmesh.ErrTooLarge) {
			t.Fatalf("%T: got %v, want ErrTooLarge", v, err)
		}
	}
	if st := p.Stats(); st.TooLarge != 2 || st.Sent != 0 {
		t.Fatalf("got %d too large, %d sent; want 2, 0", st.TooLarge, st.Sent)
	}
}

// Worker.Close returns within HandlerGrace when a handler ignores its ctx.
func TestWorkerCloseStuckHandler(t *testing.T) {
	addr := testutil.FreeTCP(t)
	release := make(chan struct{})
	running := make(chan struct{}, 1)
	w, err := pipeline.NewWorker(pipeline.HandlerFunc(func(ctx context.Context, job *pipeline.Job) error {
		select {
		case running <- struct{}{}:
		default:
		}
		<-release // ignores ctx
		return nil
	}), pipeline.WithListen(addr))
	if err != nil {
		t.Fatal(err)
	}
	p := mustProducer(t, pipeline.WithDial(addr), pipeline.WithWaitForWorker())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.Produce(ctx, 1) })
	defer func() { cancel(); wg.Wait() }()
	<-running
	start := time.Now()
	w.Close()
	elapsed := time.Since(start)
	st := w.Stats()
	close(release)
	t.Logf("Worker.Close with a stuck handler returned in %v (grace %v)", elapsed, pipeline.HandlerGrace)
	if elapsed > pipeline.HandlerGrace+5*time.Second || st.Abandoned != 1 {
		t.Fatalf("got Close in %v with %d abandoned, want about %v and 1", elapsed, st.Abandoned, pipeline.HandlerGrace)
	}
}

// A Puller whose application stops reading holds at most WithQueueBytes of
// messages in its queue; then it stops reading and the Pusher blocks. Every
// message is delivered once the application reads again.
func TestStalledPullerQueueBytes(t *testing.T) {
	const (
		size   = 128 << 10
		qbytes = 1 << 20
		n      = 512 // 64 MiB: more than the kernel's buffers hold
	)
	addr := testutil.FreeTCP(t)
	pl := mustPuller(t, pipeline.WithListen(addr), pipeline.WithQueueBytes(qbytes))
	p := mustPusher(t, pipeline.WithDial(addr))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var pushed atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		payload := make([]byte, size)
		for range n {
			if p.Push(ctx, payload) != nil {
				return
			}
			pushed.Add(1)
		}
	})
	defer wg.Wait()
	// The queue fills up to its byte bound, then the puller stops taking.
	want := qbytes / (size + 64 + 256) // frame and per-message overhead
	testutil.Eventually(t, 20*time.Second, func() error {
		if got := len(pl.C()); got != want {
			return fmt.Errorf("got %d queued (%d pushed), want %d", got, pushed.Load(), want)
		}
		return nil
	})
	if got := pushed.Load(); got >= n {
		t.Fatalf("got all %d pushed with the puller stalled, want the pusher blocked", got)
	}
	t.Logf("stalled puller: %d queued (%d KiB), %d pushed of %d", len(pl.C()), len(pl.C())*size>>10, pushed.Load(), n)
	for i := range n {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := pl.Next(c)
		cancel()
		if err != nil {
			t.Fatalf("message %d: got %v", i, err)
		}
	}
}

// A Push over the limit fails with ErrTooLarge, before encoding in full,
// and is counted.
func TestPushTooLarge(t *testing.T) {
	p := mustPusher(t, pipeline.WithDial(testutil.FreeTCP(t)), pipeline.WithMaxMessageSize(1<<20))
	for _, v := range []any{make([]byte, 2<<20), struct{ B []byte }{make([]byte, 2<<20)}} {
		if err := p.Push(context.Background(), v); !errors.Is(err, spmesh.ErrTooLarge) {
			t.Fatalf("%T: got %v, want ErrTooLarge", v, err)
		}
	}
	if st := p.Stats(); st.TooLarge != 2 || st.Sent != 0 {
		t.Fatalf("got %d too large, %d sent; want 2, 0", st.TooLarge, st.Sent)
	}
}

func TestHardeningOptionsInvalid(t *testing.T) {
	h := pipeline.HandlerFunc(func(ctx context.Context, job *pipeline.Job) error { return nil })
	for name, f := range map[string]func() error{
		"send timeout 0":         func() error { _, err := pipeline.NewWorker(h, pipeline.WithSendTimeout(0)); return err },
		"send timeout on puller": func() error { _, err := pipeline.NewPuller(pipeline.WithSendTimeout(time.Second)); return err },
		"queue bytes tiny":       func() error { _, err := pipeline.NewPuller(pipeline.WithQueueBytes(10)); return err },
		"queue bytes on worker":  func() error { _, err := pipeline.NewWorker(h, pipeline.WithQueueBytes(1<<20)); return err },
	} {
		if err := f(); !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), "With") {
			t.Errorf("%s: got %v, want ErrInvalidOption naming the option", name, err)
		}
	}
}
