package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/pipeline"
)

// spmeshAcked is the at-least-once pipeline: a Producer with ackWindow
// jobs in flight, Workers that ack after a handler that does nothing.
// Counted: acks as they arrive at the producer.
func spmeshAcked(size, workers int) (*stream, error) {
	return spmeshAckedWith(false, 0, ackWindow, 1, workers)
}

// spmeshDurable is the acked pipeline with the Producer's outbox
// (pipeline.WithOutbox, fsynced before each job is accepted) in a file
// under a fresh temporary directory, and durableWindow jobs in flight and
// as many submitters at once, so that group commit has company.
func spmeshDurable(size, workers int) (*stream, error) {
	return spmeshAckedWith(true, 0, durableWindow, durableWindow, workers)
}

// periodicSync is spmesh+periodic's fsync interval: JetStream's default
// sync_interval (its file store fsyncs every 2 minutes).
const periodicSync = 2 * time.Minute

// spmeshDurablePeriodic is spmeshDurable with the outbox fsynced every
// periodicSync (pipeline.WithOutboxSync) rather than before each job is
// accepted: JetStream's default promise, for the same-promise comparison
// with nats (file storage, default sync).
func spmeshDurablePeriodic(size, workers int) (*stream, error) {
	return spmeshAckedWith(true, periodicSync, durableWindow, durableWindow, workers)
}

// spmeshDurableMemory is spmeshDurable without the outbox: the cost of
// durability, as a ratio in the same run.
func spmeshDurableMemory(size, workers int) (*stream, error) {
	return spmeshAckedWith(false, 0, durableWindow, durableWindow, workers)
}

func spmeshDurableSystem(name string, f func(size, workers int) (*stream, error)) *system {
	return &system{name: name, partial: true, durable: f}
}

// spmeshAckedWith is the acked pipeline with window jobs in flight, fed by
// senders goroutines at once, with an outbox or not (fsynced every sync,
// or per commit when 0).
func spmeshAckedWith(outbox bool, sync time.Duration, window, senders, workers int) (*stream, error) {
	var cs closers
	opts := []pipeline.Option{pipeline.WithCodec(spmesh.Raw), pipeline.WithMaxInFlight(window), pipeline.WithWaitForWorker()}
	if outbox {
		dir, err := os.MkdirTemp("", "spmesh-bench-outbox-")
		if err != nil {
			return nil, err
		}
		cs.add(func() error { return os.RemoveAll(dir) })
		opts = append(opts, pipeline.WithOutbox(filepath.Join(dir, "outbox.db")), pipeline.WithOutboxSync(sync))
	}
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
	results := make(chan *pipeline.Result, 2*window)
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
		senders: senders,
		counts:  acks, close: cs.close,
	}, nil
}
