package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pipeline"
)

// A worker that another producer keeps busy gets proportionally fewer of
// the jobs of two producers sharing it with an idle worker: its acks say
// how many jobs it runs, and each producer counts those that are not its
// own as load there. Two workers of concurrency 4; a third producer holds
// 3 long jobs on the first for the whole test, leaving it 1 free handler
// against the other's 4: a fair share of the short jobs is 1 in 5, while
// a choice by each producer's own jobs alone spreads them evenly (1 in 3
// to 1 in 2 at the busy worker).
func TestSharedWorkerBusyElsewhereGetsFewer(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	type counted struct {
		w     *pipeline.Worker
		short atomic.Int64
	}
	var ws [2]*counted
	for i := range ws {
		c := &counted{}
		c.w = mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
			if string(j.Data) == "long" {
				select { // held until the test ends
				case <-release:
				case <-ctx.Done():
				}
				return nil
			}
			c.short.Add(1)
			select { // the job's work, not a wait for a condition
			case <-time.After(2 * time.Millisecond):
			case <-ctx.Done():
			}
			return nil
		}), pipeline.WithConcurrency(4), pipeline.WithCodec(spmesh.Raw))
		ws[i] = c
	}
	a1, a2 := listen(t, ws[0].w, "tcp"), listen(t, ws[1].w, "tcp")

	long := mustProducer(t, pipeline.WithDial(a1), pipeline.WithCodec(spmesh.Raw))
	workerPeers(t, long, 1)
	ctx := ctxT(t, 60*time.Second)
	for range 3 {
		if _, err := long.ProduceAsync(ctx, "long"); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := ws[0].w.Stats().InFlight; n != 3 {
			return fmt.Errorf("busy worker: got %d handlers running, want the 3 long jobs", n)
		}
		return nil
	})

	const perCaller, callers = 100, 2 // per producer
	var prods [2]*pipeline.Producer
	for i := range prods {
		prods[i] = mustProducer(t, pipeline.WithDial(a1), pipeline.WithDial(a2), pipeline.WithCodec(spmesh.Raw))
		workerPeers(t, prods[i], 2)
	}
	var wg sync.WaitGroup
	for _, p := range prods {
		for range callers {
			wg.Go(func() {
				for range perCaller {
					if err := p.Produce(ctx, "short"); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	busy, idle := ws[0].short.Load(), ws[1].short.Load()
	total := busy + idle
	if total != 2*callers*perCaller {
		t.Fatalf("short jobs run: got %d, want %d", total, 2*callers*perCaller)
	}
	share := float64(busy) / float64(total)
	t.Logf("busy worker (1 of 4 handlers free): %d of %d short jobs (%.0f%%), idle worker %d; fair: 20%%", busy, total, 100*share, idle)
	if share > 0.3 {
		t.Errorf("busy worker took %.0f%% of the short jobs (%d of %d), want at most 30%% (fair: 20%%)", 100*share, busy, total)
	}
	for i, p := range prods {
		for _, ps := range p.Stats().PerPeer {
			if ps.InFlight < 0 || ps.InFlight > ps.Credit {
				t.Errorf("producer %d: peer %s has %d in flight, credit %d", i, ps.Addr, ps.InFlight, ps.Credit)
			}
			// The busy worker still runs the 3 long jobs: its acks said
			// so (less what of this producer's own it may have run).
			if ps.Addr == strings.TrimPrefix(a1, "tcp://") && ps.Others == 0 {
				t.Errorf("producer %d: busy worker %s: Others 0, want the long jobs counted", i, ps.Addr)
			}
		}
	}
}
