package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pipeline"
)

// fairWorker is a worker whose handler takes a little time (so that the
// producer's window stays full) and counts its jobs.
type fairWorker struct {
	w    *pipeline.Worker
	jobs atomic.Int64
}

func newFairWorker(t *testing.T, opts ...pipeline.Option) *fairWorker {
	t.Helper()
	fw := &fairWorker{}
	w, err := pipeline.NewWorker(pipeline.HandlerFunc(func(ctx context.Context, job *pipeline.Job) error {
		fw.jobs.Add(1)
		select { // the job's work, not a wait for a condition
		case <-time.After(40 * time.Millisecond):
		case <-ctx.Done():
		}
		return nil
	}), append([]pipeline.Option{pipeline.WithConcurrency(2)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	fw.w = w
	return fw
}

// checkLateShare produces jobs through pr to the three early workers, adds
// a fourth worker (join, which returns once the producer can see it) after
// a quarter of the jobs, checks that every job is acked, and logs the late
// worker's share of the jobs produced after it was connected.
//
// The share is logged, not asserted: mangos REQ gives the next request to
// the connection that answered last, so a worker that has answered nothing
// yet gets a job only when the others are all mid-send. On a quiet machine
// it got 9 to 39 of a fair 30; with two test suites loading both cores it
// once got 0. Even spread needs spmesh's own per-worker scheduling (a
// follow-up); until then this test documents the behaviour.
func checkLateShare(t *testing.T, pr *pipeline.Producer, early []*fairWorker, join func() *fairWorker) {
	t.Helper()
	const total = 160
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := pr.Stats().Peers; n != len(early) {
			return fmt.Errorf("got %d workers connected, want %d", n, len(early))
		}
		return nil
	})
	var late *fairWorker
	var before int64 // jobs run by the early workers when the late one was connected
	for i := range total {
		if i == total/4 {
			late = join()
			testutil.Eventually(t, 10*time.Second, func() error {
				if n := pr.Stats().Peers; n != len(early)+1 {
					return fmt.Errorf("got %d workers connected, want %d", n, len(early)+1)
				}
				return nil
			})
			for _, w := range early {
				before += w.jobs.Load()
			}
		}
		if _, err := pr.ProduceAsync(ctx, i); err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		if st := pr.Stats(); st.Acked != total {
			return fmt.Errorf("got %d jobs acked, want %d", st.Acked, total)
		}
		return nil
	})
	counts := make([]int64, 0, len(early)+1)
	for _, w := range early {
		counts = append(counts, w.jobs.Load())
	}
	got := late.jobs.Load()
	counts = append(counts, got)
	after := total - before // jobs left when the late worker was connected
	fair := after / int64(len(early)+1)
	t.Logf("jobs per worker %v; late worker: %d of %d produced after it was connected (fair share %d)", counts, got, after, fair)
	if got < fair/3 {
		t.Logf("late worker below a third of its fair share: mangos REQ scheduling (see above)")
	}
}

func TestLateWorkerShareDial(t *testing.T) {
	pr, err := pipeline.NewProducer(pipeline.WithMaxInFlight(8))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	var early []*fairWorker
	for range 3 {
		w := newFairWorker(t)
		addr, err := w.w.Listen("tcp://127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := pr.Dial(addr); err != nil {
			t.Fatal(err)
		}
		early = append(early, w)
	}
	checkLateShare(t, pr, early, func() *fairWorker {
		w := newFairWorker(t)
		addr, err := w.w.Listen("tcp://127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := pr.Dial(addr); err != nil {
			t.Fatal(err)
		}
		return w
	})
}

func TestLateWorkerShareStatic(t *testing.T) {
	reg := discovery.NewStatic("127.0.0.1")
	defer reg.Close()
	pr, err := pipeline.NewProducer(pipeline.WithDiscovery(reg, "jobs"), pipeline.WithMaxInFlight(8))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	var early []*fairWorker
	for range 3 {
		early = append(early, newFairWorker(t, pipeline.WithDiscovery(reg, "jobs")))
	}
	checkLateShare(t, pr, early, func() *fairWorker {
		return newFairWorker(t, pipeline.WithDiscovery(reg, "jobs"))
	})
}

func TestLateWorkerShareGossip(t *testing.T) {
	// Runs last: memberlist's probe goroutines outlive Shutdown by up to a
	// probe timeout; let them end before goleak looks.
	t.Cleanup(func() {
		testutil.Until(5*time.Second, func() error {
			buf := make([]byte, 1<<20)
			if bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("hashicorp/memberlist")) {
				return errors.New("memberlist goroutines still running")
			}
			return nil
		})
	})
	start := func(seeds ...string) *discovery.Node {
		cfg := discovery.LocalConfig()
		cfg.Seeds = seeds
		n, err := discovery.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	seed := start()
	pr, err := pipeline.NewProducer(pipeline.WithDiscovery(seed, "jobs"), pipeline.WithMaxInFlight(8))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	var early []*fairWorker
	for range 3 {
		early = append(early, newFairWorker(t, pipeline.WithDiscovery(start(seed.Addr()), "jobs")))
	}
	checkLateShare(t, pr, early, func() *fairWorker {
		return newFairWorker(t, pipeline.WithDiscovery(start(seed.Addr()), "jobs"))
	})
}
