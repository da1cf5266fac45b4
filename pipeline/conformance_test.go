package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pipeline"
)

// TestConformance runs the shared suite on all four pipeline types (the
// bare Pusher and Puller too) and the pair check on Pusher+Puller and
// Producer+Worker.
func TestConformance(t *testing.T) {
	testutil.Conform(t, map[string]testutil.Pattern{
		"Pusher":      withHostile(pusherPattern(), hostilePuller),
		"Pusher/bare": confPusher(pipeline.WithBareFrames()),
		"Puller":      pullerPattern(),
		"Puller/bare": confPuller(pipeline.WithBareFrames()),
		"Producer":    producerPattern(),
		"Worker":      confWorker(),
	}, map[string]testutil.Pair{
		"Pusher+Puller":                 confPushPull(false),
		"Pusher+Puller/bare":            confPushPull(false, pipeline.WithBareFrames()),
		"Pusher+Puller/pusherBinds":     confPushPull(true),
		"Producer+Worker":               confProduceWork(false),
		"Producer+Worker/producerBinds": confProduceWork(true),
	})
}

func confPusher(opts ...pipeline.Option) testutil.Pattern {
	return testutil.Pattern{
		Open: func(t *testing.T, addr string) io.Closer {
			p, err := pipeline.NewPusher(append(opts, pipeline.WithDial(addr))...)
			return testutil.Open(t, p, err)
		},
		// With no puller connected, Push blocks until ctx ends.
		Wait: func(ctx context.Context, s io.Closer) error {
			return s.(*pipeline.Pusher).Push(ctx, 1)
		},
		Invalid: map[string]func() error{
			"queue too big": func() error { _, err := pipeline.NewPusher(append(opts, pipeline.WithQueueLen(1<<21))...); return err },
			"tiny max size": func() error {
				_, err := pipeline.NewPusher(append(opts, pipeline.WithMaxMessageSize(63))...)
				return err
			},
			"worker-only": func() error { _, err := pipeline.NewPusher(append(opts, pipeline.WithConcurrency(2))...); return err },
		},
	}
}

func confPuller(opts ...pipeline.Option) testutil.Pattern {
	return testutil.Pattern{
		Open: func(t *testing.T, addr string) io.Closer {
			p, err := pipeline.NewPuller(append(opts, pipeline.WithListen(addr))...)
			return testutil.Open(t, p, err)
		},
		Listens: true,
		Wait: func(ctx context.Context, s io.Closer) error {
			_, err := s.(*pipeline.Puller).Next(ctx)
			return err
		},
		Invalid: map[string]func() error{
			"queue zero":  func() error { _, err := pipeline.NewPuller(append(opts, pipeline.WithQueueLen(0))...); return err },
			"pusher-only": func() error { _, err := pipeline.NewPuller(append(opts, pipeline.WithNonBlocking())...); return err },
			"bad address": func() error {
				_, err := pipeline.NewPuller(append(opts, pipeline.WithListen("foo://x"))...)
				return err
			},
		},
	}
}

// confJobs runs h on every job, after decoding its index into i.
func confJobs(h func(ctx context.Context, i int) error) pipeline.Handler {
	return pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		var i int
		if err := j.Decode(&i); err != nil {
			return err
		}
		return h(ctx, i)
	})
}

// confWorker is the serving side: the suite waits on WaitPeers and checks
// Drain and Close with a producer connected and a job running.
func confWorker() testutil.Pattern {
	open := func(t *testing.T, addr string, h func(ctx context.Context) error) io.Closer {
		w, err := pipeline.NewWorker(confJobs(func(ctx context.Context, _ int) error { return h(ctx) }), pipeline.WithListen(addr))
		return testutil.Open(t, w, err)
	}
	nop := confJobs(func(context.Context, int) error { return nil })
	return testutil.Pattern{
		Open: func(t *testing.T, addr string) io.Closer {
			return open(t, addr, func(context.Context) error { return nil })
		},
		Listens: true,
		Invalid: map[string]func() error{
			"nil handler":   func() error { _, err := pipeline.NewWorker(nil); return err },
			"concurrency 0": func() error { _, err := pipeline.NewWorker(nop, pipeline.WithConcurrency(0)); return err },
			"credit 0":      func() error { _, err := pipeline.NewWorker(nop, pipeline.WithCredit(0)); return err },
			"dedup size 0":  func() error { _, err := pipeline.NewWorker(nop, pipeline.WithDedup(0, 0)); return err },
			"producer-only": func() error { _, err := pipeline.NewWorker(nop, pipeline.WithAckTimeout(time.Second)); return err },
			"bare":          func() error { _, err := pipeline.NewWorker(nop, pipeline.WithBareFrames()); return err },
			"queue zero":    func() error { _, err := pipeline.NewWorker(nop, pipeline.WithQueueLen(0)); return err },
		},
		Serve: &testutil.Serve{
			Open:  open,
			Proto: testutil.ProtoReq,
			Peer: func(t *testing.T, addr string) io.Closer {
				p, err := pipeline.NewProducer(pipeline.WithDial(addr), pipeline.WithWaitForWorker())
				return testutil.Open(t, p, err)
			},
			// Produce returns once the worker acked the job.
			Call: func(ctx context.Context, peer io.Closer) error {
				return peer.(*pipeline.Producer).Produce(ctx, 7)
			},
		},
	}
}

// ends are the wiring options of a pair on addr: the binder listens and
// the connector dials, or the other way round when rev.
func ends(rev bool, addr string) (binder, connector pipeline.Option) {
	if rev {
		return pipeline.WithDial(addr), pipeline.WithListen(addr)
	}
	return pipeline.WithListen(addr), pipeline.WithDial(addr)
}

// confPushPull: a puller listens, a pusher dials it (the other way round
// when rev); message i is the int i.
func confPushPull(rev bool, opts ...pipeline.Option) testutil.Pair {
	return testutil.Pair{
		Open: func(t *testing.T, addr string, _ func(int)) (io.Closer, io.Closer) {
			binder, connector := ends(rev, addr)
			pl, err := pipeline.NewPuller(append(opts, binder)...)
			b := testutil.Open(t, pl, err)
			ps, err := pipeline.NewPusher(append(opts, connector)...)
			return testutil.Open(t, ps, err), b
		},
		Send: func(ctx context.Context, a io.Closer, i int) error {
			return a.(*pipeline.Pusher).Push(ctx, i)
		},
		Ordered: true,
		Recv: func(ctx context.Context, b io.Closer) (int, error) {
			m, err := b.(*pipeline.Puller).Next(ctx)
			if err != nil {
				return 0, err
			}
			var i int
			err = m.Decode(&i)
			return i, err
		},
	}
}

// confProduceWork: a worker listens, a producer dials it (the other way
// round when rev); job i is the int i, and Produce returns once it is
// acked.
func confProduceWork(rev bool) testutil.Pair {
	return testutil.Pair{
		Open: func(t *testing.T, addr string, got func(int)) (io.Closer, io.Closer) {
			binder, connector := ends(rev, addr)
			w, err := pipeline.NewWorker(confJobs(func(_ context.Context, i int) error { got(i); return nil }), binder)
			b := testutil.Open(t, w, err)
			p, err := pipeline.NewProducer(connector, pipeline.WithWaitForWorker())
			return testutil.Open(t, p, err), b
		},
		Send: func(ctx context.Context, a io.Closer, i int) error {
			return a.(*pipeline.Producer).Produce(ctx, i)
		},
	}
}

func withHostile(p testutil.Pattern, h func(t *testing.T, s io.Closer, addr string, frames [][]byte)) testutil.Pattern {
	p.Hostile = h
	return p
}

// hostilePuller sends the pusher s garbage from a raw SP PULL peer over
// TCP (a puller sends nothing): the pusher discards it and goes on
// pushing to that very connection.
func hostilePuller(t *testing.T, s io.Closer, addr string, frames [][]byte) {
	if !strings.HasPrefix(addr, "tcp://") {
		t.Skip("the raw peer speaks SP over TCP")
	}
	p := s.(*pipeline.Pusher)
	raw := testutil.ListenSP(t, addr, testutil.ProtoPull) // the pusher dials addr
	for i, f := range frames {
		if err := raw.Send(f); err != nil {
			t.Fatalf("hostile frame %d: %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Push(ctx, 1); err != nil {
		t.Fatalf("push after the hostile frames: %v", err)
	}
	if b, err := raw.Recv(10 * time.Second); err != nil || len(b) == 0 {
		t.Fatalf("raw puller after its hostile frames: got %d bytes, %v, want the pushed message", len(b), err)
	}
	// Every frame is discarded and counted as not a valid message; the
	// connection is kept.
	testutil.Eventually(t, 10*time.Second, func() error {
		st := p.Stats()
		if st.DecodeErrors != uint64(len(frames)) {
			return fmt.Errorf("DecodeErrors after %d hostile frames: got %d, want %d", len(frames), st.DecodeErrors, len(frames))
		}
		if st.Peers != 1 {
			return fmt.Errorf("Peers: got %d, want 1 (the connection is kept)", st.Peers)
		}
		return nil
	})
}
