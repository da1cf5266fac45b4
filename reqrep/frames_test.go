package reqrep_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/layer"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/reqrep"
	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/rep"
	"go.nanomsg.org/mangos/v3/protocol/req"
)

// TestWorkerFrames: with RoleWorker both sides speak jobs and acks, a
// handler error travels as a flagged nack, and neither flavour serves the
// other's frames.
func TestWorkerFrames(t *testing.T) {
	addr := testutil.Inproc(t)
	rp := mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, r *reqrep.Request) (any, error) {
		var s string
		if err := r.Decode(&s); err != nil {
			return nil, err
		}
		if s == "fail" {
			return nil, spmesh.Errorf(7, "failed")
		}
		return s + "!", nil
	}), reqrep.WithListen(addr), workerFrames())
	rq := mustRequester(t, reqrep.WithDial(addr), workerFrames())
	peers(t, rq, 1)
	ctx := ctxT(t, 10*time.Second)

	// Data is sent as is, already encoded.
	data, _ := spmesh.Msgpack.Marshal("job")
	c := &reqrep.Call{Body: "ignored"}
	layer.ReqrepCallData(c, data)
	r, err := rq.Do(ctx, c)
	var got string
	if err != nil || r.Decode(&got) != nil || got != "job!" {
		t.Fatalf("job: got %q, %v, want \"job!\", nil", got, err)
	}
	_, err = rq.Do(ctx, &reqrep.Call{Body: "fail"})
	var re *spmesh.RemoteError
	if !errors.As(err, &re) || re.Code != 7 {
		t.Fatalf("failed job: got %v, want a RemoteError with code 7", err)
	}

	// A plain requester is refused by the worker, and the other way round.
	plain := mustRequester(t, reqrep.WithDial(addr))
	peers(t, plain, 1)
	if err := plain.Request(ctx, "x", nil); !errors.Is(err, spmesh.ErrDecode) {
		t.Fatalf("plain request to a worker: got %v, want ErrDecode", err)
	}
	if st := rp.Stats(); st.DecodeErrors != 1 {
		t.Fatalf("worker decode errors: got %d, want 1", st.DecodeErrors)
	}
	paddr := testutil.Inproc(t)
	mustReplier(t, thumbnailer("plain"), reqrep.WithListen(paddr))
	wq := mustRequester(t, reqrep.WithDial(paddr), workerFrames())
	peers(t, wq, 1)
	if err := wq.Request(ctx, resize{"a", 1}, nil); !errors.Is(err, spmesh.ErrDecode) {
		t.Fatalf("job to a plain replier: got %v, want ErrDecode", err)
	}
}

// TestWorkerFramesOnTheWire checks the bytes: a worker gets a Job frame and
// its error reply is an Ack flagged as a nack; an Ack flagged as a nack
// without a text is a failure for the requester.
func TestWorkerFramesOnTheWire(t *testing.T) {
	addr := testutil.Inproc(t)
	mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, r *reqrep.Request) (any, error) {
		return nil, errors.New("no")
	}), reqrep.WithListen(addr), workerFrames())
	raw, err := req.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.SetOption(mangos.OptionRetryTime, time.Duration(0)); err != nil {
		t.Fatal(err)
	}
	if err := raw.Dial(addr); err != nil {
		t.Fatal(err)
	}
	if err := raw.Send(append(wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindJob, ID: wire.ID{1}, Attempt: 1}), 0xc0)); err != nil {
		t.Fatal(err)
	}
	b, err := raw.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var env wire.Msg
	if err := wire.Decode(b, &env); err != nil || env.Kind != wire.KindAck || env.Flags&wire.FlagNack == 0 || env.Err != "no" || env.ID != (wire.ID{1}) {
		t.Fatalf("reply to a failing job: got %+v, %v, want an Ack for id 1 flagged nack with error \"no\"", env, err)
	}

	// A nack with no text, from a raw REP peer.
	raddr := testutil.Inproc(t)
	rawRep, err := rep.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer rawRep.Close()
	if err := rawRep.Listen(raddr); err != nil {
		t.Fatal(err)
	}
	rq := mustRequester(t, reqrep.WithDial(raddr), workerFrames())
	peers(t, rq, 1)
	done := make(chan error, 1)
	go func() { _, err := rq.Do(ctxT(t, 10*time.Second), &reqrep.Call{Body: 1}); done <- err }()
	m, err := rawRep.RecvMsg()
	if err != nil {
		t.Fatal(err)
	}
	if err := wire.Decode(m.Body, &env); err != nil || env.Kind != wire.KindJob {
		t.Fatalf("worker requester sent %+v, %v, want a Job frame", env, err)
	}
	m.Body = wire.AppendHeader(m.Body[:0:0], &wire.Msg{Kind: wire.KindAck, ID: env.ID, Flags: wire.FlagNack})
	if err := rawRep.SendMsg(m); err != nil {
		t.Fatal(err)
	}
	var re *spmesh.RemoteError
	if err := <-done; !errors.As(err, &re) || re.Message != "nack" {
		t.Fatalf("bare nack: got %v, want a RemoteError \"nack\"", err)
	}
}

// workerFrames makes a Requester or Replier speak the pipeline's frames
// (what the pipeline's Producer and Worker use, through internal/layer).
func workerFrames() reqrep.Option { return layer.ReqrepWorker().(reqrep.Option) }
