// Command pipeline shows work distribution without a broker, both halves:
//
//   - at most once: a Pusher spreads jobs over two Pullers found by service
//     name (fast; a job in a dying puller's hands is lost);
//   - at least once: a Producer hands jobs to Workers and each job is acked
//     after its handler returns nil; a job whose handler fails (or whose
//     worker dies, or does not ack in time) is delivered again.
//
// Everything runs in this process over loopback TCP, wired through a
// discovery.Static registry.
//
//	go run ./examples/pipeline
package main

import (
	"context"
	"fmt"
	"log"
	"slices"
	"sync"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/pipeline"
)

// Job is one unit of work.
type Job struct {
	Image string
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg := discovery.NewStatic("127.0.0.1")
	defer reg.Close()

	atMostOnce(ctx, reg)
	atLeastOnce(ctx, reg)
}

// atLeastOnce produces 6 jobs for two workers; the first delivery of
// img-03 fails, and the producer delivers it again.
func atLeastOnce(ctx context.Context, reg *discovery.Static) {
	var mu sync.Mutex
	attempts := map[string]int{}
	for _, name := range []string{"worker-1", "worker-2"} {
		w, err := pipeline.NewWorker(pipeline.TypedHandler(func(ctx context.Context, job *pipeline.Job, j Job) error {
			mu.Lock()
			defer mu.Unlock()
			attempts[j.Image] = job.Attempt
			if j.Image == "img-03" && job.Attempt == 1 {
				return fmt.Errorf("%s: disk full", name) // a nack: delivered again
			}
			return nil // the ack
		}), pipeline.WithDiscovery(reg, "thumbnails"), pipeline.WithConcurrency(2))
		if err != nil {
			log.Fatal(err)
		}
		defer w.Close()
	}
	p, err := pipeline.NewProducer(pipeline.WithDiscovery(reg, "thumbnails"),
		pipeline.WithWaitForWorker(), // wait for a worker rather than fail with ErrNoPeers
		pipeline.WithMaxAttempts(5))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	// ProduceAsync returns once the job is in flight; Wait waits for its ack.
	var results []*pipeline.Result
	for i := range 6 {
		r, err := p.ProduceAsync(ctx, Job{Image: fmt.Sprintf("img-%02d", i+1)})
		if err != nil {
			log.Fatal(err)
		}
		results = append(results, r)
	}
	for _, r := range results {
		if err := r.Wait(ctx); err != nil {
			log.Fatal(err)
		}
	}
	st := p.Stats()
	fmt.Printf("at least once: %d jobs acked, %d nacked and delivered again; img-03 took %d attempts\n",
		st.Acked, st.RemoteErrors, attempts["img-03"])
}

// atMostOnce pushes 10 jobs to two pullers.
func atMostOnce(ctx context.Context, reg *discovery.Static) {
	push, err := pipeline.NewPusher(pipeline.WithDiscovery(reg, "resize"))
	if err != nil {
		log.Fatal(err)
	}
	defer push.Close()

	const jobs = 10
	var mu sync.Mutex
	done := map[string][]string{}
	var wg sync.WaitGroup
	jobCtx, stop := context.WithCancel(ctx)
	defer stop()
	for _, name := range []string{"puller-1", "puller-2"} {
		pl, err := pipeline.NewPuller(pipeline.WithDiscovery(reg, "resize"))
		if err != nil {
			log.Fatal(err)
		}
		defer pl.Close()
		wg.Go(func() {
			for m, err := range pl.All(jobCtx) {
				if err != nil {
					return
				}
				job, err := spmesh.Decode[Job](m)
				if err != nil {
					log.Fatal(err)
				}
				mu.Lock()
				done[name] = append(done[name], job.Image)
				if n := len(done["puller-1"]) + len(done["puller-2"]); n == jobs {
					stop()
				}
				mu.Unlock()
			}
		})
	}
	// Push blocks until a puller is connected; wait for both so that the
	// load spreads from the first job.
	if err := push.WaitPeers(ctx, 2); err != nil {
		log.Fatal(err)
	}
	for i := range jobs {
		if err := push.Push(ctx, Job{Image: fmt.Sprintf("img-%02d", i+1)}); err != nil {
			log.Fatal(err)
		}
	}
	wg.Wait()
	for _, name := range []string{"puller-1", "puller-2"} {
		slices.Sort(done[name])
		fmt.Printf("at most once: %s pulled %d of %d jobs\n", name, len(done[name]), jobs)
	}
}
