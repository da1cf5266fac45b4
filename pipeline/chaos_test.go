//go:build linux

package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pipeline"
)

// chaosEnv, when set to a producer's address, makes the test binary run as
// a worker process dialing it (see chaosWorker) instead of running tests.
// It is read in init, before TestMain, so this file needs no hook there.
const chaosEnv = "SPMESH_PIPELINE_CHAOS_WORKER"

func init() {
	if addr := os.Getenv(chaosEnv); addr != "" {
		os.Exit(chaosWorker(addr))
	}
}

// chaosWorker runs a worker that dials the producer at addr, runs each job
// for up to 2ms, prints "RAN <id>" before acking it, and prints "READY"
// once started. It exits when its stdin closes, or dies by SIGKILL.
func chaosWorker(addr string) int {
	var mu sync.Mutex
	w, err := pipeline.NewWorker(pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond) // the work
		mu.Lock()
		defer mu.Unlock()
		_, err := fmt.Fprintf(os.Stdout, "RAN %s\n", j.ID)
		return err
	}), pipeline.WithDial(addr), pipeline.WithConcurrency(8), pipeline.WithReconnect(10*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mu.Lock()
	fmt.Fprintln(os.Stdout, "READY")
	mu.Unlock()
	io.Copy(io.Discard, os.Stdin)
	w.Close()
	return 0
}

// runs counts the "RAN <id>" lines of every child.
type runs struct {
	mu sync.Mutex
	n  map[string]int
}

// startChaosChild starts a worker process, killed at the end of the test,
// and waits until it is ready.
func startChaosChild(t *testing.T, addr string, rs *runs) *testutil.Child {
	t.Helper()
	ready := make(chan struct{})
	c := testutil.StartLines(t, testutil.SelfCommand(chaosEnv+"="+addr), func(line string) {
		if id, ok := strings.CutPrefix(line, "RAN "); ok {
			rs.mu.Lock()
			rs.n[id]++
			rs.mu.Unlock()
		} else if line == "READY" {
			close(ready)
		}
	})
	select {
	case <-ready:
	case <-c.Done():
		t.Fatal("worker process exited before it was ready")
	case <-time.After(20 * time.Second):
		t.Fatal("worker process not ready within 20s")
	}
	return c
}

// TestChaosWorkersKilled produces 5,000 jobs with an async window to 3
// worker processes, SIGKILLing one (with jobs in hand) every 300 acked jobs
// and starting a new one: every job is acked, and has run at least once.
// Duplicates (jobs run more than once: their ack was lost with a killed
// worker after the work was done) are reported.
func TestChaosWorkersKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	const (
		jobs      = 5000
		killEvery = 300
	)
	p := mustProducer(t,
		pipeline.WithMaxInFlight(64),
		pipeline.WithAckTimeout(5*time.Second),
		pipeline.WithMaxAttempts(50),
		pipeline.WithWaitForWorker())
	addr, err := p.Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs := &runs{n: map[string]int{}}
	var children []*testutil.Child
	for range 3 {
		children = append(children, startChaosChild(t, addr, rs))
	}
	workerPeers(t, p, 3)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	results := make(chan []*pipeline.Result, 1)
	go func() {
		var out []*pipeline.Result
		defer func() { results <- out }()
		for i := range jobs {
			r, err := p.Submit(ctx, pipeline.Task{ID: pipeline.JobIDOf(fmt.Sprint("job-", i)), Body: i})
			if err != nil {
				t.Errorf("job %d: %v", i, err)
				return
			}
			out = append(out, r)
		}
	}()

	kills := 0
	for next := uint64(killEvery); next < jobs; next += killEvery {
		testutil.Eventually(t, 30*time.Second, func() error {
			if got := p.Stats().Acked; got < next {
				return fmt.Errorf("acked: got %d, want %d", got, next)
			}
			return nil
		})
		i := kills % len(children)
		children[i].Kill()
		kills++
		children[i] = startChaosChild(t, addr, rs)
	}

	rsl := <-results
	if len(rsl) != jobs {
		t.Fatalf("jobs produced: got %d, want %d", len(rsl), jobs)
	}
	for i, r := range rsl {
		if err := r.Wait(ctx); err != nil {
			t.Fatalf("job %d: got %v, want acked", i, err)
		}
	}
	took := time.Since(start)
	// Every acked job printed its RAN line before its ack left the worker.
	rs.mu.Lock()
	defer rs.mu.Unlock()
	dups, maxRuns := 0, 0
	for i := range jobs {
		n := rs.n[pipeline.JobIDOf(fmt.Sprint("job-", i)).String()]
		if n == 0 {
			t.Fatalf("job %d: acked but never ran", i)
		}
		dups += n - 1
		maxRuns = max(maxRuns, n)
	}
	st := p.Stats()
	t.Logf("%d jobs acked in %v with %d workers killed: %d duplicate runs (at most %d runs of one job); producer: %d resent, %d lost, %d timeouts, %d nacked",
		jobs, took.Round(time.Millisecond), kills, dups, maxRuns, st.Resent, st.Lost, st.Timeouts, st.RemoteErrors)
	if st.Acked != jobs || st.DeadLettered != 0 || st.Failed != 0 {
		t.Fatalf("producer stats: got %+v, want %d acked, none dead-lettered or failed", st, jobs)
	}
	if st.Lost == 0 {
		t.Fatalf("lost deliveries: got 0, want the killed workers' jobs in hand resent")
	}
}
