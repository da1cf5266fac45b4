// Command pipeline shows work distribution without a broker: a pusher spreads
// jobs over two pullers found by service name (at most once: fast, and a job
// in a dying puller's hands is lost). Everything runs in this process over
// loopback TCP, wired through a discovery.Static registry.
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
				job, err := pipeline.Decode[Job](m)
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
	for push.Stats().Peers < 2 {
		time.Sleep(10 * time.Millisecond)
	}
	for i := range jobs {
		if err := push.Push(ctx, Job{Image: fmt.Sprintf("img-%02d", i+1)}); err != nil {
			log.Fatal(err)
		}
	}
	wg.Wait()
	for _, name := range []string{"puller-1", "puller-2"} {
		slices.Sort(done[name])
		fmt.Printf("at most once: %s pulled %d jobs\n", name, len(done[name]))
	}
}
