package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/hostile"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/sptcp"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/pipeline"
)

// TestWorkerHostilePeers runs the hostile-peer suite against a Worker over
// real TCP while a legit Producer keeps producing jobs to it. The worker's
// handler decodes whatever is not a legit job into every type of the
// suite, as typed handlers would; a "big" job fails with a 256 KiB error,
// so that its nack fills the connection of a peer that never reads.
//
// Figures: go test -run TestWorkerHostilePeers -v ./pipeline/
func TestWorkerHostilePeers(t *testing.T) {
	big := errors.New(strings.Repeat("x", 256<<10))
	w := mustWorker(t, pipeline.HandlerFunc(func(_ context.Context, j *pipeline.Job) error {
		var s string
		if j.Decode(&s) == nil {
			switch s {
			case "hi":
				return nil
			case "big":
				return big
			}
		}
		hostile.DecodeTypes(j.Decode)
		return errors.New("not a legit job")
	}), pipeline.WithListen("tcp://127.0.0.1:0"), pipeline.WithSendTimeout(200*time.Millisecond))
	addr := w.Addrs()[0]
	// The legit producer redelivers after a second without an ack: a
	// worker drops acks it cannot send in time, and counts on that.
	p := mustProducer(t, pipeline.WithDial(addr), pipeline.WithWaitForWorker(), pipeline.WithAckTimeout(time.Second))
	tg := hostile.Target{
		Name:      "worker",
		Connect:   func() (*hostile.Conn, error) { return hostile.Dial(addr, hostile.ProtoReq) },
		Kind:      wire.KindJob,
		ReqHeader: true,
		Legit:     func(ctx context.Context) error { return p.Produce(ctx, "hi") },
		Stats:     func() spmesh.Stats { return w.Stats().Stats },
		Big:       mustMarshal(t, "big"),
		BigHeld:   hostile.AnswersHeld(sock.ServerQueueFloor + 2 + pipeline.DefaultConcurrency),
		Bodies:    true,
		MaxConns:  sptcp.MaxConns,
	}
	hostile.Run(t, tg, hostile.StandardAttacks(tg, 8<<20))
}

// TestPullerHostilePeers runs the hostile-peer suite against a Puller over
// real TCP while a legit Pusher keeps pushing to it; what the attacker
// pushes that the Puller delivers is decoded into every type of the suite
// by the application (the legit call), which goes on to its own message.
//
// Figures: go test -run TestPullerHostilePeers -v ./pipeline/
func TestPullerHostilePeers(t *testing.T) {
	pl := mustPuller(t)
	addr, err := pl.Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ps := mustPusher(t, pipeline.WithDial(addr))
	seq := 0
	tg := hostile.Target{
		Name:    "puller",
		Connect: func() (*hostile.Conn, error) { return hostile.Dial(addr, hostile.ProtoPush) },
		Kind:    wire.KindPush,
		Legit: func(ctx context.Context) error {
			seq++
			want := fmt.Sprint("legit-", seq)
			if err := ps.Push(ctx, want); err != nil {
				return err
			}
			for {
				m, err := pl.Next(ctx)
				if err != nil {
					return err
				}
				var s string
				if m.Decode(&s) == nil && s == want {
					return nil
				}
				hostile.DecodeTypes(m.Decode) // the attacker's: decoded, dropped
			}
		},
		Stats:    pl.Stats,
		Bodies:   true,
		MaxConns: sptcp.MaxConns,
	}
	hostile.Run(t, tg, hostile.StandardAttacks(tg, 8<<20))
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := spmesh.Msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
