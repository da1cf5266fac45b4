package pipeline_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/foreign"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/pipeline"
	"github.com/spmesh/spmesh/reqrep"
	"go.nanomsg.org/mangos/v3/protocol/rep"
	"go.nanomsg.org/mangos/v3/protocol/req"
)

// Jobs and acks are not requests and replies: a reqrep Requester sending
// to a Worker gets ErrDecode (the worker counts a decode error and runs
// nothing), and a Producer sending to a reqrep Replier gets no ack: the
// job ends in the dead letter with ErrDecode.
func TestJobsAreNotRequests(t *testing.T) {
	ctx := ctxT(t, 10*time.Second)
	ran := make(chan struct{}, 1)
	w := mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		ran <- struct{}{}
		return nil
	}))
	waddr := listen(t, w, testutil.Inproc(t))
	rq, err := reqrep.NewRequester(reqrep.WithDial(waddr))
	rq = must(t, rq, err)
	if err := rq.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := rq.Request(ctx, "x", nil); !errors.Is(err, spmesh.ErrDecode) {
		t.Fatalf("request to a worker: got %v, want ErrDecode", err)
	}
	if st := w.Stats(); st.DecodeErrors != 1 || len(ran) != 0 {
		t.Fatalf("worker: got %d decode errors, handler ran %d times, want 1 and 0", st.DecodeErrors, len(ran))
	}

	rp, err := reqrep.NewReplier(reqrep.HandlerFunc(func(ctx context.Context, r *reqrep.Request) (any, error) {
		return "served", nil
	}))
	rp = must(t, rp, err)
	raddr, err := rp.Listen(testutil.Inproc(t))
	if err != nil {
		t.Fatal(err)
	}
	p := mustProducer(t, pipeline.WithDial(raddr), pipeline.WithMaxAttempts(1))
	workerPeers(t, p, 1)
	if err := p.Produce(ctx, "job"); !errors.Is(err, pipeline.ErrDeadLetter) || !errors.Is(err, spmesh.ErrDecode) {
		t.Fatalf("job to a replier: got %v, want ErrDeadLetter wrapping ErrDecode", err)
	}
	if st := rp.Stats(); st.DecodeErrors != 1 {
		t.Fatalf("replier: got %d decode errors, want 1", st.DecodeErrors)
	}
}

// A Producer sends Job frames (kind 5, attempt 1, the job's id); an Ack
// flagged as a nack without any text (what a foreign worker may send) is
// a failure: redelivered, then dead-lettered with a RemoteError "nack".
func TestProducerNackWithoutText(t *testing.T) {
	addr := testutil.Inproc(t)
	raw, err := rep.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.Listen(addr); err != nil {
		t.Fatal(err)
	}
	p := mustProducer(t, pipeline.WithDial(addr), pipeline.WithMaxAttempts(2))
	workerPeers(t, p, 1)
	id := pipeline.JobIDOf("nack-without-text")
	r, err := p.Submit(ctxT(t, 10*time.Second), pipeline.Task{ID: id, Body: 1})
	if err != nil {
		t.Fatal(err)
	}
	for attempt := uint32(1); attempt <= 2; attempt++ {
		m, err := raw.RecvMsg()
		if err != nil {
			t.Fatal(err)
		}
		var env wire.Msg
		if err := wire.Decode(m.Body, &env); err != nil || env.Kind != wire.KindJob || env.ID != wire.ID(id) || env.Attempt != attempt {
			t.Fatalf("producer sent %+v, %v, want a Job frame of id %s, attempt %d", env, err, id, attempt)
		}
		m.Body = wire.AppendHeader(m.Body[:0:0], &wire.Msg{Kind: wire.KindAck, ID: env.ID, Attempt: env.Attempt, Flags: wire.FlagNack})
		if err := raw.SendMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	var re *spmesh.RemoteError
	if err := r.Wait(ctxT(t, 10*time.Second)); !errors.Is(err, pipeline.ErrDeadLetter) || !errors.As(err, &re) || re.Message != "nack" {
		t.Fatalf("nacked without text: got %v, want ErrDeadLetter wrapping a RemoteError \"nack\"", err)
	}
	if st := p.Stats(); st.RemoteErrors != 2 || st.DeadLettered != 1 {
		t.Fatalf("got %d nacked, %d dead-lettered, want 2 and 1", st.RemoteErrors, st.DeadLettered)
	}
}

// The pipeline does not import reqrep: Producer and Worker use spmesh's
// own engine (internal/sock's Caller and Server) directly.
func TestPipelineOffReqrep(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the import graph: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "github.com/spmesh/spmesh/pipeline").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 || !strings.Contains(string(out), "github.com/spmesh/spmesh/internal/sock") {
		t.Fatalf("go list shows no internal/sock among the pipeline's dependencies: the listing is wrong\n%s", out)
	}
	for _, d := range deps {
		if d == "github.com/spmesh/spmesh/reqrep" || d == "github.com/spmesh/spmesh/internal/layer" {
			t.Errorf("pipeline depends on %s, want it off reqrep", d)
		}
	}
}

// A job over the Worker's size limit is nacked with code -2, and that
// nack announces the worker's credit like every ack: over TCP (refused as
// it arrives, without reading it whole) and over inproc (refused when
// taken).
func TestWorkerTooLargeNackCarriesCredit(t *testing.T) {
	w := mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		t.Error("handler ran for a job over the limit")
		return nil
	}), pipeline.WithMaxMessageSize(1024), pipeline.WithCredit(4), pipeline.WithCodec(spmesh.Raw))
	job := (&foreign.Envelope{Kind: foreign.KindJob, ID: [16]byte{1}, Attempt: 1, Body: make([]byte, 2048)}).Append(nil)
	check := func(how string, b []byte) {
		t.Helper()
		nack, err := foreign.Parse(b)
		if err != nil {
			t.Fatalf("%s: nack % x: %v", how, b, err)
		}
		if nack.Kind != foreign.KindAck || nack.Code != -2 || nack.Flags&foreign.FlagNack == 0 || nack.Credit != 4 || nack.ID != [16]byte{1} {
			t.Fatalf("%s: got kind %d code %d flags %d credit %d id %x, want a nack (6) with code -2 and credit 4 for id 01..", how, nack.Kind, nack.Code, nack.Flags, nack.Credit, nack.ID)
		}
	}

	c, err := foreign.Dial(listen(t, w, "tcp"), foreign.Req)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := c.Request(1, job, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	check("tcp", b)

	raw, err := req.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.Dial(listen(t, w, testutil.Inproc(t))); err != nil {
		t.Fatal(err)
	}
	if err := raw.Send(job); err != nil {
		t.Fatal(err)
	}
	if b, err = raw.Recv(); err != nil {
		t.Fatal(err)
	}
	check("inproc", b)
	if st := w.Stats(); st.TooLarge != 2 {
		t.Fatalf("worker TooLarge: got %d, want 2", st.TooLarge)
	}
}
