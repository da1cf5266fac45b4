package pipeline_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/pipeline"
	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/pull"
	"go.nanomsg.org/mangos/v3/protocol/push"
)

const benchSize = 256

// BenchmarkPushPull measures jobs/s from 1 pusher to 2 pullers over TCP on
// loopback at 256 B, through spmesh and through raw mangos PUSH/PULL in the
// same run (and with bare frames, "bare": no envelope, raw bytes). A job counts when a puller has received it. The at-least-once
// half runs beside them (acked): 1 Producer with an async window of 64 to 2
// Workers, a job counting once its ack is back.
func BenchmarkPushPull(b *testing.B) {
	b.Run("spmesh", func(b *testing.B) { benchSpmesh(b) })
	b.Run("bare", func(b *testing.B) { benchSpmesh(b, pipeline.WithBareFrames(), pipeline.WithCodec(spmesh.Raw)) })
	b.Run("mangos", benchMangos)
	b.Run("acked", benchProducerWorker)
}

func benchProducerWorker(b *testing.B) {
	var ws []*pipeline.Worker
	for range 2 {
		ws = append(ws, mustWorker(b, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error { return nil }),
			pipeline.WithConcurrency(32)))
	}
	p := mustProducer(b, append(dialAll(b, "tcp", ws), pipeline.WithMaxInFlight(64))...)
	workerPeers(b, p, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	payload := make([]byte, benchSize)

	// A reader waits for the results in order while the producer runs
	// ahead by at most the window.
	results := make(chan *pipeline.Result, 64)
	failed := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for r := range results {
			if err := r.Wait(ctx); err != nil {
				select {
				case failed <- err:
				default:
				}
			}
		}
	}()
	b.ReportAllocs()
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		r, err := p.ProduceAsync(ctx, payload)
		if err != nil {
			b.Fatal(err)
		}
		results <- r
	}
	close(results)
	<-done
	b.StopTimer()
	select {
	case err := <-failed:
		b.Fatal(err)
	default:
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

func benchSpmesh(b *testing.B, opts ...pipeline.Option) {
	pls := []*pipeline.Puller{mustPuller(b, opts...), mustPuller(b, opts...)}
	p := mustPusher(b, append(dialAll(b, "tcp", pls), opts...)...)
	peers(b, p, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	payload := make([]byte, benchSize)

	var got atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, pl := range pls {
		wg.Go(func() {
			for _, err := range pl.All(ctx) {
				if err != nil {
					return
				}
				if got.Add(1) == int64(b.N) {
					close(done)
				}
			}
		})
	}
	b.ReportAllocs()
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		if err := p.Push(ctx, payload); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
	cancel()
	wg.Wait()
}

func benchMangos(b *testing.B) {
	ps, err := push.NewSocket()
	if err != nil {
		b.Fatal(err)
	}
	defer ps.Close()
	var attached atomic.Int64
	ps.SetPipeEventHook(func(ev mangos.PipeEvent, _ mangos.Pipe) {
		if ev == mangos.PipeEventAttached {
			attached.Add(1)
		}
	})
	var got atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait() // after the sockets close (defers run last first)
	for range 2 {
		pl, err := pull.NewSocket()
		if err != nil {
			b.Fatal(err)
		}
		defer pl.Close()
		l, err := pl.NewListener("tcp://127.0.0.1:0", nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Listen(); err != nil {
			b.Fatal(err)
		}
		if err := ps.Dial(l.Address()); err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			for {
				m, err := pl.RecvMsg()
				if err != nil {
					return
				}
				m.Free()
				if got.Add(1) == int64(b.N) {
					close(done)
				}
			}
		})
	}
	if attached.Load() != 2 {
		b.Fatalf("raw pushers attached: got %d, want 2", attached.Load())
	}
	payload := make([]byte, benchSize)
	b.ReportAllocs()
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		m := mangos.NewMessage(benchSize)
		m.Body = append(m.Body, payload...)
		if err := ps.SendMsg(m); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}
