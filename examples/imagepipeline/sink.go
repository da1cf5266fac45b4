package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spmesh/spmesh/pipeline"
	"github.com/spmesh/spmesh/reqrep"
)

// defaultSinkOut is the sink's output directory with -role sink and no -out
// (kept across restarts, so that a restarted sink finds what it stored).
const defaultSinkOut = "imagepipeline-out"

// runSink takes results (at-least-once jobs from the workers), stores them,
// announces each (pub/sub), and answers status and finish requests
// (req/rep).
func runSink(ctx context.Context, c config, stdout io.Writer, log *slog.Logger) error {
	out := c.out
	if out == "" {
		out = defaultSinkOut
	}
	st, err := newStore(out)
	if err != nil {
		return err
	}
	defer st.close()
	m, err := c.joinMesh(log)
	if err != nil {
		return err
	}
	defer m.leave()
	node, obs := m.node, m.obs

	pub, err := m.events()
	if err != nil {
		return err
	}
	defer pub.Close()

	// A result is acked only once its files and index line are written: a
	// sink killed before that gets it again (from the worker), one killed
	// after finds it in its index when it restarts.
	w, err := pipeline.NewWorker(pipeline.TypedHandler(func(ctx context.Context, job *pipeline.Job, r Result) error {
		dup, err := st.put(&r)
		if err != nil {
			log.Error("store", "image", r.ID, "err", err)
			return err
		}
		_ = pub.Publish(ctx, topicStored, Stored{Run: r.Run, ID: r.ID, Worker: r.Worker, Duplicate: dup})
		return nil
	}), pipeline.WithDiscovery(node, svcResults), pipeline.WithConcurrency(8), pipeline.WithMaxMessageSize(maxMessage))
	if err != nil {
		return err
	}
	defer w.Close()
	obs.add(svcResults, "worker", w)

	rep, err := reqrep.NewReplier(reqrep.TypedHandler(func(ctx context.Context, req *reqrep.Request, in SinkRequest) (SinkStatus, error) {
		switch in.Op {
		case "status":
			return st.status(in.Run)
		case "finish":
			s, err := st.finish(in.Run, in.Expect)
			if err == nil {
				log.Info("run finished", "run", s.Run, "stored", s.Stored, "missing", len(s.Missing), "duplicates", s.Duplicates, "sheet", s.Sheet)
				if !c.child {
					fmt.Fprintf(stdout, "run %s: %d images stored, %d missing, %d duplicates; contact sheet %s\n",
						s.Run, s.Stored, len(s.Missing), s.Duplicates, s.Sheet)
				}
			}
			return s, err
		}
		return SinkStatus{}, fmt.Errorf("unknown op %q", in.Op)
	}), reqrep.WithDiscovery(node, svcSink))
	if err != nil {
		return err
	}
	defer rep.Close()
	obs.add(svcSink, "replier", rep)

	log.Info("sink ready", "out", out)
	<-ctx.Done()
	dctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := w.Drain(dctx); err != nil {
		log.Warn("drain", "err", err)
	}
	_ = rep.Drain(dctx)
	return nil
}
