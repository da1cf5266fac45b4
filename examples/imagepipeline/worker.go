package main

import (
	"context"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh/pipeline"
	"github.com/spmesh/spmesh/survey"
)

// runWorker takes image jobs, makes a thumbnail and the extra transform,
// hands the result to the sink as a job of its own, and acks the image job
// only once the sink has acked the result: an acked image is a stored image.
// It answers the producer's load surveys.
func runWorker(ctx context.Context, c config, log *slog.Logger) error {
	m, err := c.joinMesh(log)
	if err != nil {
		return err
	}
	defer m.leave()
	node, obs := m.node, m.obs

	// Results are jobs too: if the sink is down or restarts, they wait here
	// and are delivered again, so none is lost.
	results, err := pipeline.NewProducer(pipeline.WithDiscovery(node, svcResults),
		pipeline.WithWaitForWorker(),
		pipeline.WithMaxInFlight(2*c.concurrency),
		pipeline.WithAckTimeout(20*time.Second),
		pipeline.WithMaxAttempts(100),
		pipeline.WithMaxMessageSize(maxMessage))
	if err != nil {
		return err
	}
	defer results.Close()
	obs.add(svcResults, "producer", results)

	var inFlight, done atomic.Int64
	handle := func(ctx context.Context, job *pipeline.Job, in ImageJob) error {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		start := time.Now()
		res, err := process(&in, c.thumb, c.transform)
		if err != nil {
			// An unreadable image fails the same way every time: rather than
			// nack it until it is dead-lettered, report it to the sink as
			// failed (and ack it).
			log.Warn("cannot process", "image", in.ID, "err", err)
			res = &Result{Run: in.Run, ID: in.ID, Err: err.Error()}
		}
		if c.work > 0 && res.Err == "" { // simulated extra work, so the demo can be watched
			select {
			case <-time.After(c.work):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		res.Worker, res.Attempt, res.Took = c.name, job.Attempt, time.Since(start)
		r, err := results.Submit(ctx, pipeline.Task{ID: pipeline.JobIDOf("result/" + in.Run + "/" + in.ID), Body: res})
		if err != nil {
			return err
		}
		if err := r.Wait(ctx); err != nil {
			return err
		}
		done.Add(1)
		log.Debug("image done", "image", in.ID, "attempt", job.Attempt, "took", time.Since(start))
		return nil
	}
	w, err := pipeline.NewWorker(pipeline.TypedHandler(handle), pipeline.WithDiscovery(node, svcJobs),
		pipeline.WithConcurrency(c.concurrency),
		pipeline.WithDedup(4096, 0), // a job delivered here again after an ack is acked at once
		pipeline.WithMaxMessageSize(maxMessage))
	if err != nil {
		return err
	}
	defer w.Close()
	obs.add(svcJobs, "worker", w)

	resp, err := survey.NewRespondent(survey.TypedHandler(
		func(ctx context.Context, q *survey.Question, _ string) (Load, error) {
			return Load{Worker: c.name, PID: os.Getpid(), InFlight: int(inFlight.Load()), Done: int(done.Load()),
				Dups: int(w.Stats().Duplicates)}, nil
		}), survey.WithDiscovery(node, svcLoad), survey.WithName(c.name))
	if err != nil {
		return err
	}
	defer resp.Close()
	obs.add(svcLoad, "respondent", resp)

	log.Info("worker ready", "concurrency", c.concurrency, "transform", c.transform)
	<-ctx.Done()
	// Graceful: stop taking jobs, finish those in hand (their results
	// reach the sink), then leave the mesh (deferred).
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := w.Drain(dctx); err != nil {
		log.Warn("drain", "err", err)
	}
	log.Debug("drained jobs", "took", time.Since(start))
	_ = resp.Drain(dctx)
	log.Debug("drained surveys", "took", time.Since(start))
	if err := results.Drain(dctx); err != nil {
		log.Warn("results drain", "err", err)
	}
	log.Debug("drained results", "took", time.Since(start))
	log.Info("worker done", "images", done.Load())
	return nil
}
