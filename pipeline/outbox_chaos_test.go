//go:build linux

package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pipeline"
)

// outboxChildEnv, when set to "<run>|<outbox path>|<final jobs>|<worker addr>...",
// makes the test binary run as a producer process (see outboxChild) instead
// of running tests.
const outboxChildEnv = "SPMESH_PIPELINE_OUTBOX_PRODUCER"

// chaosFullEnv=1 runs the chaos tests at the full size (10,000
// jobs and 10 producer kills; 50 torn-write kills) instead of CI's.
const chaosFullEnv = "SPMESH_CHAOS_FULL"

// chaosSize is the size of the chaos tests: the jobs the final producer
// run submits unless total > 0 (then it submits what the killed runs left
// of total accepted jobs), where each run is killed (kill returns the
// submit count after which it is), and the torn-write kills.
type chaosSize struct {
	total     int
	finalJobs int
	kill      func() int
	tornKills int
}

func chaosSizeFor(t *testing.T) chaosSize {
	if os.Getenv(chaosFullEnv) == "1" {
		t.Logf("%s=1: full size", chaosFullEnv)
		return chaosSize{total: 10_000, kill: func() int { return 700 + rand.IntN(400) }, tornKills: 50}
	}
	return chaosSize{finalJobs: 200, kill: func() int { return 100 + rand.IntN(900) }, tornKills: 40}
}

// outboxSyncEnv, when set to a duration, makes the producer process use
// pipeline.WithOutboxSync with it (fsync every interval, not per commit).
const outboxSyncEnv = "SPMESH_PIPELINE_OUTBOX_SYNC"

// periodicSync is the fsync interval of the chaos tests' periodic mode:
// longer than any run, so no fsync happens before a kill and only the OS's
// page cache carries the accepted jobs across it.
const periodicSync = time.Hour

// syncModes are the outbox's two fsync modes the chaos tests run.
var syncModes = []struct {
	name string
	sync time.Duration
}{{"fsync", 0}, {"periodic", periodicSync}}

// childCmd is the test binary run as a producer process (outboxChild)
// with arg, in the fsync mode every (0: per commit).
func childCmd(arg string, every time.Duration) *exec.Cmd {
	return testutil.SelfCommand(outboxChildEnv+"="+arg, fmt.Sprintf("%s=%s", outboxSyncEnv, every))
}

// outboxWorkerEnv, when set to an address, makes the test binary run as a
// worker process listening there (see outboxWorker).
const outboxWorkerEnv = "SPMESH_PIPELINE_OUTBOX_WORKER"

func init() {
	if v := os.Getenv(outboxChildEnv); v != "" {
		os.Exit(outboxChild(v))
	}
	if v := os.Getenv(outboxWorkerEnv); v != "" {
		os.Exit(outboxWorker(v))
	}
}

// outboxWorker runs a worker listening on addr that prints "ADDR <bound
// address>", then "RAN <id>" for each job it runs (before acking it),
// until killed.
func outboxWorker(addr string) int {
	var mu sync.Mutex
	w, err := pipeline.NewWorker(pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		mu.Lock()
		defer mu.Unlock()
		_, err := fmt.Printf("RAN %s\n", j.ID)
		return err
	}), pipeline.WithConcurrency(16))
	if err == nil {
		addr, err = w.Listen(addr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "outbox worker:", err)
		return 1
	}
	fmt.Printf("ADDR %s\n", addr)
	select {} // until SIGKILLed
}

// startWorkerProc starts a worker process (outboxWorker) listening on
// addr, counting the jobs it runs in runs (under mu), and returns it with
// its bound address; it is killed at the end of the test.
func startWorkerProc(t *testing.T, addr string, mu *sync.Mutex, runs map[string]int) (*testutil.Child, string) {
	t.Helper()
	bound := make(chan string, 1)
	c := testutil.StartLines(t, testutil.SelfCommand(outboxWorkerEnv+"="+addr), func(line string) {
		switch {
		case strings.HasPrefix(line, "ADDR "):
			bound <- strings.TrimPrefix(line, "ADDR ")
		case strings.HasPrefix(line, "RAN "):
			mu.Lock()
			runs[strings.TrimPrefix(line, "RAN ")]++
			mu.Unlock()
		}
	})
	select {
	case a := <-bound:
		return c, a
	case <-c.Done():
		t.Fatalf("worker process on %s exited before listening", addr)
	case <-time.After(20 * time.Second):
		c.Kill()
		t.Fatalf("worker process on %s not listening within 20s", addr)
	}
	return nil, ""
}

// producerLine returns the producer process's next line, or io.EOF once
// it has exited; it fails the test if the process writes nothing for 2
// minutes.
func producerLine(t *testing.T, c *testutil.Child) (string, error) {
	t.Helper()
	line, err := c.Line(2 * time.Minute)
	if err != nil && err != io.EOF {
		t.Fatalf("producer process: %v", err)
	}
	return line, err
}

// outboxChild runs a producer with an outbox that dials the workers and
// submits jobs from 8 goroutines, printing "OK <id>" once Submit has
// accepted each. It prints "READY <recovered>" first. A final run (final
// jobs > 0) submits that many jobs, drains and exits; the others submit
// until SIGKILLed.
func outboxChild(arg string) int {
	f := strings.Split(arg, "|")
	run, path, addrs := f[0], f[1], f[3:]
	finalJobs, err := strconv.Atoi(f[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "outbox child: final jobs:", err)
		return 1
	}
	final := finalJobs > 0
	opts := []pipeline.Option{
		pipeline.WithOutbox(path), pipeline.WithWaitForWorker(), pipeline.WithMaxAttempts(1000),
		pipeline.WithAckTimeout(5 * time.Second), pipeline.WithReconnect(10*time.Millisecond, 100*time.Millisecond),
		pipeline.WithMaxInFlight(1 << 16), // no worker in the torn-write test: every job stays in flight
	}
	if v := os.Getenv(outboxSyncEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, "outbox child: sync:", err)
			return 1
		}
		opts = append(opts, pipeline.WithOutboxSync(d))
	}
	for _, a := range addrs {
		if a != "" {
			opts = append(opts, pipeline.WithDial(a))
		}
	}
	p, err := pipeline.NewProducer(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "outbox child:", err)
		return 1
	}
	var mu sync.Mutex
	fmt.Printf("READY %d\n", p.Stats().Recovered)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		share := finalJobs / 8
		if g < finalJobs%8 {
			share++
		}
		wg.Go(func() {
			for i := 0; !final || i < share; i++ {
				id := pipeline.JobIDOf(fmt.Sprintf("%s-%d-%d", run, g, i))
				if _, err := p.Submit(ctx, pipeline.Task{ID: id, Body: "job"}); err != nil {
					fmt.Fprintln(os.Stderr, "outbox child: submit:", err)
					return
				}
				mu.Lock()
				fmt.Printf("OK %s\n", id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := p.Drain(dctx); err != nil {
		fmt.Fprintln(os.Stderr, "outbox child: drain:", err)
		return 1
	}
	return 0
}

// TestOutboxChaos: a producer process with an outbox is SIGKILLed 10 times
// mid-run (during group commits) and restarted on the same outbox, and one
// of the two worker processes is SIGKILLed and restarted during every
// other run; every
// job it ever reported accepted is run by the workers. Duplicates are
// counted and logged. With SPMESH_CHAOS_FULL=1: 10,000 jobs accepted in
// all, a kill every ~1,000. In both fsync modes: per commit, and periodic
// (WithOutboxSync, never within the test), where a process crash loses
// nothing either, since the OS keeps the written pages.
func TestOutboxChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: skipped with -short")
	}
	for _, m := range syncModes {
		t.Run(m.name, func(t *testing.T) { outboxChaos(t, m.sync) })
	}
}

func outboxChaos(t *testing.T, every time.Duration) {
	size := chaosSizeFor(t)
	began := time.Now()
	path := filepath.Join(t.TempDir(), "outbox.db")
	var mu sync.Mutex
	runs := map[string]int{}
	addrs := make([]string, 2)
	ws := make([]*testutil.Child, 2)
	for i := range ws {
		ws[i], addrs[i] = startWorkerProc(t, "tcp://127.0.0.1:0", &mu, runs)
	}
	// restartWorker SIGKILLs worker process i (its jobs in flight are
	// lost, and delivered again) and starts another on the same address.
	restartWorker := func(i int) {
		ws[i].Kill()
		ws[i], _ = startWorkerProc(t, addrs[i], &mu, runs)
	}
	workerRestarts := 0
	accepted := map[string]bool{}
	var recovered []string
	const kills = 10
	for run := 0; run <= kills; run++ {
		final := run == kills
		finalJobs := 0
		if final {
			finalJobs = size.finalJobs
			if size.total > 0 {
				finalJobs = max(size.total-len(accepted), 1)
			}
		}
		c := testutil.StartLines(t, childCmd(fmt.Sprintf("r%d|%s|%d|%s", run, path, finalJobs, strings.Join(addrs, "|")), every), nil)
		killAt := size.kill()
		n := 0
		for {
			line, err := producerLine(t, c)
			if err == io.EOF {
				break
			}
			switch {
			case strings.HasPrefix(line, "READY "):
				recovered = append(recovered, strings.TrimPrefix(line, "READY "))
			case strings.HasPrefix(line, "OK "):
				accepted[strings.TrimPrefix(line, "OK ")] = true
				n++
				if n == killAt/2 && run%2 == 1 { // and a worker now and then
					restartWorker(run / 2 % 2)
					workerRestarts++
				}
				if n == killAt && !final {
					c.Cmd.Process.Kill()
				}
			}
		}
		err := c.Err()
		if final && err != nil {
			t.Fatalf("final producer run: %v", err)
		}
		if !final && err == nil {
			t.Fatalf("run %d: exited before it was killed", run)
		}
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for id := range accepted {
			if runs[id] == 0 {
				return fmt.Errorf("job %s accepted and never run (%d accepted, %d run)", id, len(accepted), len(runs))
			}
		}
		return nil
	})
	mu.Lock()
	total := 0
	for _, n := range runs {
		total += n
	}
	t.Logf("%d kills, %d worker restarts: %d jobs accepted, %d run (acked), %d deliveries run (%d duplicates); recovered per start: %v; wall time %v",
		kills, workerRestarts, len(accepted), len(runs), total, total-len(runs), recovered, time.Since(began).Round(time.Millisecond))
	mu.Unlock()
	// The final run drained: nothing is left in the outbox.
	p := mustProducer(t, pipeline.WithOutbox(path))
	if got := p.Stats().Recovered; got != 0 {
		t.Fatalf("outbox after the final drain: got %d jobs, want 0", got)
	}
}

// TestOutboxTornWrites: a producer process with no worker, 8 goroutines
// submitting, is SIGKILLed 40 times (50 with SPMESH_CHAOS_FULL=1) at
// random points (most land during a commit) and restarted on the same
// outbox: the store always opens, and every job ever reported accepted is
// then run by a worker. In both fsync modes (see TestOutboxChaos).
func TestOutboxTornWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: skipped with -short")
	}
	for _, m := range syncModes {
		t.Run(m.name, func(t *testing.T) { outboxTornWrites(t, m.sync) })
	}
}

func outboxTornWrites(t *testing.T, every time.Duration) {
	began := time.Now()
	path := filepath.Join(t.TempDir(), "outbox.db")
	accepted := map[string]bool{}
	kills := chaosSizeFor(t).tornKills
	for run := range kills {
		c := testutil.StartLines(t, childCmd(fmt.Sprintf("t%d|%s|0|", run, path), every), nil)
		killAt, n := 1+rand.IntN(200), 0
		for {
			line, err := producerLine(t, c)
			if err == io.EOF {
				break
			}
			if strings.HasPrefix(line, "OK ") {
				accepted[strings.TrimPrefix(line, "OK ")] = true
				if n++; n == killAt {
					c.Cmd.Process.Kill()
				}
			}
		}
		if err := c.Err(); err == nil {
			t.Fatalf("run %d: exited before it was killed", run)
		} else if ee, ok := err.(*exec.ExitError); !ok || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("run %d: got %v, want killed by SIGKILL (the store failed to open?)", run, err)
		}
	}
	var mu sync.Mutex
	ran := map[string]bool{}
	w := mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		mu.Lock()
		ran[j.ID.String()] = true
		mu.Unlock()
		return nil
	}), pipeline.WithConcurrency(32))
	p := mustProducer(t, pipeline.WithOutbox(path), pipeline.WithDial(listen(t, w, "tcp")), pipeline.WithMaxInFlight(1<<16))
	t.Logf("%d kills: %d jobs accepted, %d in the outbox at the end", kills, len(accepted), p.Stats().Recovered)
	defer func() { t.Logf("wall time %v", time.Since(began).Round(time.Millisecond)) }()
	if got := p.Stats().Recovered; got < uint64(len(accepted)) {
		t.Fatalf("recovered: got %d, want at least the %d accepted", got, len(accepted))
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for id := range accepted {
			if !ran[id] {
				return fmt.Errorf("job %s accepted and never run (%d accepted, %d run)", id, len(accepted), len(ran))
			}
		}
		return nil
	})
}
