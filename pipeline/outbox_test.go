package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pipeline"
	bolt "go.etcd.io/bbolt"
)

// seen records the deliveries a worker ran, per job id.
type seen struct {
	mu       sync.Mutex
	runs     map[spmesh.ID]int
	attempts map[spmesh.ID]int // the last delivery's attempt
	bodies   map[spmesh.ID]string
}

func newSeen() *seen {
	return &seen{runs: map[spmesh.ID]int{}, attempts: map[spmesh.ID]int{}, bodies: map[spmesh.ID]string{}}
}

func (s *seen) handler() pipeline.Handler {
	return pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		var body string
		if err := j.Decode(&body); err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.runs[j.ID]++
		s.attempts[j.ID] = j.Attempt
		s.bodies[j.ID] = body + "|" + j.Header["k"]
		return nil
	})
}

func (s *seen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.runs)
}

// TestOutboxRecovery: jobs accepted by a producer with no worker are sent,
// with their ids, headers and bodies, by the next producer on the same
// outbox, before a job submitted after the restart.
func TestOutboxRecovery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	const n = 50
	p, err := pipeline.NewProducer(pipeline.WithOutbox(path), pipeline.WithWaitForWorker())
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 20*time.Second)
	for i := range n {
		id := pipeline.JobIDOf(fmt.Sprint("job-", i))
		if _, err := p.Submit(ctx, pipeline.Task{ID: id, Header: spmesh.Header{"k": "v"}, Body: fmt.Sprint("body-", i)}); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	if got := p.Stats().Recovered; got != 0 {
		t.Fatalf("recovered on a new outbox: got %d, want 0", got)
	}
	if err := p.Close(); !errors.Is(err, pipeline.ErrUnacked) {
		t.Fatalf("close: got %v, want ErrUnacked", err)
	}

	// With no worker, Drain waits for the recovered jobs, then reports
	// them unacked; they stay in the outbox.
	pd, err := pipeline.NewProducer(pipeline.WithOutbox(path), pipeline.WithWaitForWorker())
	if err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := pd.Drain(dctx); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, pipeline.ErrUnacked) {
		t.Fatalf("drain with recovered jobs and no worker: got %v, want DeadlineExceeded and ErrUnacked", err)
	}

	s := newSeen()
	w := mustWorker(t, s.handler())
	addr := listen(t, w, "tcp")
	p2 := mustProducer(t, pipeline.WithOutbox(path), pipeline.WithDial(addr))
	if got := p2.Stats().Recovered; got != n {
		t.Fatalf("recovered: got %d, want %d", got, n)
	}
	workerPeers(t, p2, 1)
	if err := p2.Produce(ctx, "after"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := s.count(); got != n+1 {
			return fmt.Errorf("jobs run: got %d, want %d", got, n+1)
		}
		return nil
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range n {
		id := pipeline.JobIDOf(fmt.Sprint("job-", i))
		if got, want := s.bodies[id], fmt.Sprint("body-", i, "|v"); got != want {
			t.Errorf("job %d: got body %q, want %q", i, got, want)
		}
		if got := s.attempts[id]; got != 3 {
			t.Errorf("job %d: got attempt %d, want 3 (the first delivery after 2 restarts)", i, got)
		}
	}
	// Acked jobs leave the outbox: a third producer recovers none.
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := p2.Stats().Acked; got != n+1 {
			return fmt.Errorf("acked: got %d, want %d", got, n+1)
		}
		return nil
	})
	p2.Close()
	p3 := mustProducer(t, pipeline.WithOutbox(path), pipeline.WithDial(addr))
	if got := p3.Stats().Recovered; got != 0 {
		t.Fatalf("recovered after every job was acked: got %d, want 0", got)
	}
}

// TestOutboxLocked: a second producer on the same outbox is refused with
// an error naming the lock.
func TestOutboxLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	mustProducer(t, pipeline.WithOutbox(path))
	p, err := pipeline.NewProducer(pipeline.WithOutbox(path))
	if err == nil {
		p.Close()
		t.Fatal("second producer on the same outbox: got nil error")
	}
	if !errors.Is(err, pipeline.ErrOutbox) || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("got %v, want an error wrapping ErrOutbox that names the lock", err)
	}
}

// TestOutboxCorrupt: a file that is not a bbolt store, or one damaged, is
// refused at NewProducer with an error, not a panic.
func TestOutboxCorrupt(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	// A real store whose pages after the meta pages are overwritten.
	damaged := filepath.Join(dir, "damaged.db")
	p := mustProducer(t, pipeline.WithOutbox(damaged), pipeline.WithWaitForWorker())
	for i := range 20 {
		if _, err := p.ProduceAsync(ctxT(t, 10*time.Second), fmt.Sprint("x", i)); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	b, err := os.ReadFile(damaged)
	if err != nil {
		t.Fatal(err)
	}
	ps := os.Getpagesize()
	for i := 2 * ps; i < len(b); i++ {
		b[i] = 0xA5
	}
	if err := os.WriteFile(damaged, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{garbage, damaged} {
		p, err := pipeline.NewProducer(pipeline.WithOutbox(path))
		if err == nil {
			p.Close()
			t.Fatalf("%s: got nil error", filepath.Base(path))
		}
		if !errors.Is(err, pipeline.ErrOutbox) {
			t.Fatalf("%s: got %v, want an error wrapping ErrOutbox", filepath.Base(path), err)
		}
		t.Logf("%s: %v", filepath.Base(path), err)
	}
}

// TestOutboxFull: at its limit, Submit waits for room until its ctx ends,
// or fails at once with ErrOutboxFull when fail-fast.
func TestOutboxFull(t *testing.T) {
	for _, failFast := range []bool{false, true} {
		t.Run(fmt.Sprint("failfast=", failFast), func(t *testing.T) {
			opts := []pipeline.Option{
				pipeline.WithOutbox(filepath.Join(t.TempDir(), "outbox.db")),
				pipeline.WithOutboxLimit(2, 1<<20), pipeline.WithWaitForWorker(),
			}
			if failFast {
				opts = append(opts, pipeline.WithOutboxFailFast())
			}
			p := mustProducer(t, opts...)
			for i := range 2 {
				if _, err := p.ProduceAsync(ctxT(t, 10*time.Second), i); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			_, err := p.ProduceAsync(ctx, 3)
			want := context.DeadlineExceeded
			if failFast {
				want = pipeline.ErrOutboxFull
			}
			if !errors.Is(err, want) {
				t.Fatalf("third job: got %v, want %v", err, want)
			}
		})
	}
}

// TestOutboxFullWaitsForAck: a Submit waiting for room goes on once a job
// is acked.
func TestOutboxFullWaitsForAck(t *testing.T) {
	release := make(chan struct{})
	w := mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}))
	p := mustProducer(t, pipeline.WithOutbox(filepath.Join(t.TempDir(), "outbox.db")),
		pipeline.WithOutboxLimit(1, 1<<20), pipeline.WithDial(listen(t, w, "tcp")))
	workerPeers(t, p, 1)
	ctx := ctxT(t, 10*time.Second)
	r1, err := p.ProduceAsync(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		r2, err := p.ProduceAsync(ctx, 2)
		if err == nil {
			err = r2.Wait(ctx)
		}
		done <- err
	}()
	close(release)
	if err := r1.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("second job: %v", err)
	}
}

func TestOutboxOptions(t *testing.T) {
	for name, o := range map[string]pipeline.Option{
		"empty path":     pipeline.WithOutbox(""),
		"directory":      pipeline.WithOutbox(t.TempDir()),
		"zero jobs":      pipeline.WithOutboxLimit(0, 1<<20),
		"tiny bytes":     pipeline.WithOutboxLimit(10, 10),
		"negative sync":  pipeline.WithOutboxSync(-time.Second),
		"sync under 1ms": pipeline.WithOutboxSync(time.Microsecond),
		"sync over 1h":   pipeline.WithOutboxSync(2 * time.Hour),
	} {
		if _, err := pipeline.NewProducer(o); !errors.Is(err, spmesh.ErrInvalidOption) {
			t.Errorf("%s: got %v, want ErrInvalidOption", name, err)
		}
	}
	if _, err := pipeline.NewWorker(pipeline.HandlerFunc(func(context.Context, *pipeline.Job) error { return nil }),
		pipeline.WithOutbox("x.db")); !errors.Is(err, spmesh.ErrInvalidOption) {
		t.Errorf("outbox on a worker: got %v, want ErrInvalidOption", err)
	}
}

// TestOutboxSyncPeriodic: with WithOutboxSync (fsync every interval, here
// never within the test), jobs accepted by a producer with no worker are
// sent by the next producer on the same outbox after Close, and acked jobs
// leave it, as with an fsync per commit.
func TestOutboxSyncPeriodic(t *testing.T) {
	for _, every := range []time.Duration{time.Millisecond, time.Hour} {
		t.Run(every.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "outbox.db")
			const n = 40
			p := mustProducer(t, pipeline.WithOutbox(path), pipeline.WithOutboxSync(every), pipeline.WithWaitForWorker())
			ctx := ctxT(t, 20*time.Second)
			for i := range n {
				if _, err := p.Submit(ctx, pipeline.Task{ID: pipeline.JobIDOf(fmt.Sprint("job-", i)), Body: "b"}); err != nil {
					t.Fatalf("submit %d: %v", i, err)
				}
			}
			if err := p.Close(); !errors.Is(err, pipeline.ErrUnacked) {
				t.Fatalf("close: got %v, want ErrUnacked", err)
			}
			s := newSeen()
			w := mustWorker(t, s.handler())
			p2 := mustProducer(t, pipeline.WithOutbox(path), pipeline.WithOutboxSync(every), pipeline.WithDial(listen(t, w, "tcp")))
			if got := p2.Stats().Recovered; got != n {
				t.Fatalf("recovered: got %d, want %d", got, n)
			}
			testutil.Eventually(t, 10*time.Second, func() error {
				if got := p2.Stats().Acked; got != n {
					return fmt.Errorf("acked: got %d, want %d", got, n)
				}
				return nil
			})
			if err := p2.Drain(ctx); err != nil {
				t.Fatalf("drain: %v", err)
			}
			p3 := mustProducer(t, pipeline.WithOutbox(path), pipeline.WithOutboxSync(every))
			if got := p3.Stats().Recovered; got != 0 {
				t.Fatalf("recovered after every job was acked: got %d, want 0", got)
			}
		})
	}
}

// BenchmarkOutbox measures acked jobs/s of 256 B from 1 Producer to 2
// Workers over TCP on loopback, without and with an outbox (in the test's
// temporary directory: fsync per commit, or every 2 minutes with
// WithOutboxSync), with 1 and 64 goroutines submitting: with one, every
// job waits for its own fsync; with 64, jobs submitted during a commit
// share the next one (group commit). jobs/commit is the jobs over the
// outbox's commits (bbolt write transactions: 2 fdatasyncs each when
// fsynced per commit), acks' deletes included.
func BenchmarkOutbox(b *testing.B) {
	for _, subs := range []int{1, 64} {
		for _, mode := range []string{"memory", "outbox", "outbox-periodic"} {
			b.Run(fmt.Sprintf("%s/submitters=%d", mode, subs), func(b *testing.B) { benchOutbox(b, mode, subs) })
		}
	}
}

func benchOutbox(b *testing.B, mode string, subs int) {
	var ws []*pipeline.Worker
	for range 2 {
		ws = append(ws, mustWorker(b, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error { return nil }),
			pipeline.WithConcurrency(64)))
	}
	opts := append(dialAll(b, "tcp", ws), pipeline.WithMaxInFlight(256))
	path := filepath.Join(b.TempDir(), "outbox.db")
	switch mode {
	case "outbox":
		opts = append(opts, pipeline.WithOutbox(path))
	case "outbox-periodic":
		opts = append(opts, pipeline.WithOutbox(path), pipeline.WithOutboxSync(2*time.Minute))
	}
	p := mustProducer(b, opts...)
	workerPeers(b, p, 2)
	ctx := context.Background()
	payload := make([]byte, 256)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range subs {
		wg.Go(func() {
			var rs []*pipeline.Result
			for next.Add(1) <= int64(b.N) {
				r, err := p.ProduceAsync(ctx, payload)
				if err != nil {
					b.Error(err)
					return
				}
				rs = append(rs, r)
			}
			for _, r := range rs {
				if err := r.Wait(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
	if mode == "memory" {
		return
	}
	if err := p.Close(); err != nil {
		b.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var commits int
	db.View(func(tx *bolt.Tx) error { commits = tx.ID(); return nil })
	b.ReportMetric(float64(b.N)/float64(max(commits, 1)), "jobs/commit")
}
