package main

import (
	"context"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/pipeline"
)

// spmeshAcked is the at-least-once pipeline: a Producer with ackWindow
// jobs in flight, Workers that ack after a handler that does nothing.
// Counted: acks as they arrive at the producer.
func spmeshAcked(size, workers int) (*stream, error) {
	var cs closers
	opts := []pipeline.Option{pipeline.WithCodec(spmesh.Raw), pipeline.WithMaxInFlight(ackWindow), pipeline.WithWaitForWorker()}
	nop := pipeline.HandlerFunc(func(context.Context, *pipeline.Job) error { return nil })
	for range workers {
		w, err := pipeline.NewWorker(nop, pipeline.WithCodec(spmesh.Raw), pipeline.WithConcurrency(ackWorkers))
		if err != nil {
			cs.close()
			return nil, err
		}
		cs.add(w.Close)
		addr, err := w.Listen(loopback)
		if err != nil {
			cs.close()
			return nil, err
		}
		opts = append(opts, pipeline.WithDial(addr))
	}
	p, err := pipeline.NewProducer(opts...)
	if err != nil {
		cs.close()
		return nil, err
	}
	cs.add(p.Close)
	acks := counters(1)
	// Acks mostly come back in order: one goroutine waits on the futures
	// in turn (no goroutine per job).
	results := make(chan *pipeline.Result, 2*ackWindow)
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		for r := range results {
			if r.Wait(context.Background()) == nil {
				acks[0].Add(1)
			}
		}
	}()
	cs.add(func() error { close(results); <-waited; return nil })
	ctx := context.Background()
	return &stream{
		send: func(b []byte) error {
			r, err := p.ProduceAsync(ctx, b)
			if err != nil {
				return err
			}
			results <- r
			return nil
		},
		counts: acks, close: cs.close,
	}, nil
}
