package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/pipeline"
)

func ExampleProducer() {
	type Resize struct {
		Image string
		Width int
	}

	// A worker acks a job when its handler returns nil; an error is a
	// nack, and the producer delivers the job again.
	worker, err := pipeline.NewWorker(pipeline.TypedHandler(func(ctx context.Context, job *pipeline.Job, r Resize) error {
		if r.Width <= 0 {
			return fmt.Errorf("bad width %d", r.Width)
		}
		fmt.Printf("thumbnail %s at %dpx (attempt %d)\n", r.Image, r.Width, job.Attempt)
		return nil
	}), pipeline.WithListen("inproc://example-resize"))
	if err != nil {
		panic(err)
	}
	defer worker.Close()

	// After 2 failed deliveries a job goes to the dead letter.
	producer, err := pipeline.NewProducer(
		pipeline.WithDial("inproc://example-resize"),
		pipeline.WithWaitForWorker(),
		pipeline.WithMaxAttempts(2),
		pipeline.WithDeadLetter(func(dl *pipeline.DeadLetter) {
			r, _ := spmesh.Decode[Resize](dl)
			fmt.Printf("dead letter: %s after %d attempts\n", r.Image, dl.Attempts)
		}))
	if err != nil {
		panic(err)
	}
	defer producer.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, r := range []Resize{{"cat.jpg", 128}, {"dog.jpg", 256}} {
		// Produce returns once a worker has acked the job.
		if err := producer.Produce(ctx, r); err != nil {
			panic(err)
		}
	}
	err = producer.Produce(ctx, Resize{"owl.jpg", 0})
	fmt.Println("dead-lettered:", errors.Is(err, pipeline.ErrDeadLetter))
	// Output:
	// thumbnail cat.jpg at 128px (attempt 1)
	// thumbnail dog.jpg at 256px (attempt 1)
	// dead letter: owl.jpg after 2 attempts
	// dead-lettered: true
}

func ExampleProducer_ProduceAsync() {
	var done atomic.Int64
	worker, err := pipeline.NewWorker(pipeline.HandlerFunc(func(ctx context.Context, job *pipeline.Job) error {
		done.Add(1)
		return nil
	}), pipeline.WithListen("inproc://example-async"), pipeline.WithConcurrency(16))
	if err != nil {
		panic(err)
	}
	defer worker.Close()
	// Up to 32 jobs in flight: ProduceAsync blocks only while all are.
	producer, err := pipeline.NewProducer(pipeline.WithDial("inproc://example-async"),
		pipeline.WithWaitForWorker(), pipeline.WithMaxInFlight(32))
	if err != nil {
		panic(err)
	}
	defer producer.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var results []*pipeline.Result
	for i := range 100 {
		r, err := producer.ProduceAsync(ctx, i)
		if err != nil {
			panic(err)
		}
		results = append(results, r)
	}
	for _, r := range results {
		if err := r.Wait(ctx); err != nil {
			panic(err)
		}
	}
	fmt.Println("acked:", producer.Stats().Acked, "run:", done.Load())
	// Output:
	// acked: 100 run: 100
}
