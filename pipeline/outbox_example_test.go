package pipeline_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/spmesh/spmesh/pipeline"
)

// Effectively-once processing across a producer crash: the outbox keeps
// accepted jobs until acked, the job id is stable (JobIDOf), workers drop
// ids they acked lately (WithDedup), and the handler is idempotent.
func ExampleWithOutbox() {
	dir, err := os.MkdirTemp("", "outbox-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "orders.outbox")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// A producer accepts two orders while no worker runs, then goes away
	// (a crash would do the same: the jobs are on disk).
	producer, err := pipeline.NewProducer(pipeline.WithOutbox(path), pipeline.WithWaitForWorker(),
		pipeline.WithDial("inproc://example-orders"))
	if err != nil {
		panic(err)
	}
	for _, order := range []string{"order-1", "order-2"} {
		if _, err := producer.Submit(ctx, pipeline.Task{ID: pipeline.JobIDOf(order), Body: order}); err != nil {
			panic(err)
		}
	}
	producer.Close() // reports the 2 jobs unacked; they stay in the outbox

	var mu sync.Mutex
	charged := map[string]int{} // the idempotent side: charge an order once
	worker, err := pipeline.NewWorker(pipeline.TypedHandler(func(ctx context.Context, job *pipeline.Job, order string) error {
		mu.Lock()
		defer mu.Unlock()
		charged[order]++
		return nil
	}), pipeline.WithListen("inproc://example-orders"), pipeline.WithDedup(10000, time.Hour))
	if err != nil {
		panic(err)
	}
	defer worker.Close()

	// The restarted producer sends both again, before anything new.
	producer, err = pipeline.NewProducer(pipeline.WithOutbox(path), pipeline.WithWaitForWorker(),
		pipeline.WithDial("inproc://example-orders"))
	if err != nil {
		panic(err)
	}
	fmt.Println("recovered:", producer.Stats().Recovered)
	// Not knowing whether order-1 went through, the application submits
	// it again, with its stable id: the worker acks it without running it.
	for _, order := range []string{"order-1", "order-3"} {
		if _, err := producer.Submit(ctx, pipeline.Task{ID: pipeline.JobIDOf(order), Body: order}); err != nil {
			panic(err)
		}
	}
	if err := producer.Drain(ctx); err != nil { // every job acked, then closed
		panic(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, o := range slices.Sorted(maps.Keys(charged)) {
		fmt.Printf("%s charged %d time(s)\n", o, charged[o])
	}
	// Output:
	// recovered: 2
	// order-1 charged 1 time(s)
	// order-2 charged 1 time(s)
	// order-3 charged 1 time(s)
}
