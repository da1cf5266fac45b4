package pipeline_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/foreign"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pipeline"
)

// A producer written from WIRE.md alone (internal/foreign: standard
// library only, a REQ over SP/TCP sending job envelopes) feeds an ordinary
// Worker: an ack (kind 6) echoes the job's id and attempt and announces
// the worker's credit; a failing handler's nack carries its code, message
// and the nack flag; a resent id is acked without running again
// (WithDedup); jobs without an id (key 1 zero or absent) run every time;
// a raw body is nacked with code -3.
func TestForeignProducer(t *testing.T) {
	type seen struct {
		id      spmesh.ID
		attempt int
		body    string
	}
	ran := make(chan seen, 16)
	w := mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, job *pipeline.Job) error {
		ran <- seen{job.ID, job.Attempt, string(job.Data)}
		if string(job.Data) == "fail" {
			return spmesh.Errorf(42, "busy")
		}
		return nil
	}), pipeline.WithCodec(spmesh.Raw), pipeline.WithCredit(4), pipeline.WithDedup(100, time.Minute))
	addr := listen(t, w, "tcp")
	c, err := foreign.Dial(addr, foreign.Req)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	sp := uint32(0)
	// send sends frame as one job and returns the parsed ack.
	send := func(frame []byte) *foreign.Envelope {
		t.Helper()
		sp++
		b, err := c.Request(sp, frame, 10*time.Second)
		if err != nil {
			t.Fatalf("job %d: %v", sp, err)
		}
		ack, err := foreign.Parse(b)
		if err != nil {
			t.Fatalf("job %d: ack % x: %v", sp, b, err)
		}
		if ack.Kind != foreign.KindAck || ack.Credit != 4 || len(ack.Body) != 0 {
			t.Fatalf("job %d: got kind %d credit %d body %q, want an ack (6) with credit 4 and no body", sp, ack.Kind, ack.Credit, ack.Body)
		}
		return ack
	}
	job := func(id [16]byte, attempt uint64, body string) []byte {
		e := foreign.Envelope{Kind: foreign.KindJob, ID: id, Time: time.Now().UnixNano(), Attempt: attempt, Body: []byte(body)}
		return e.Append(nil)
	}
	// handled checks that the handler ran (before the ack was sent) with
	// id, attempt and body, or (want nil) that it did not run.
	handled := func(want *seen) {
		t.Helper()
		select {
		case s := <-ran:
			if want == nil || s != *want {
				t.Fatalf("handler ran with %+v, want %+v", s, want)
			}
		default:
			if want != nil {
				t.Fatalf("handler did not run, want %+v", *want)
			}
		}
	}
	var a, b [16]byte
	rand.Read(a[:])
	rand.Read(b[:])

	ack := send(job(a, 1, "resize 1"))
	if ack.ID != a || ack.Attempt != 1 || ack.Keys[8] || ack.Keys[9] || ack.Flags != 0 {
		t.Fatalf("got id %x attempt %d code %d err %q flags %d, want id %x attempt 1, no error, no flags", ack.ID, ack.Attempt, ack.Code, ack.Err, ack.Flags, a)
	}
	handled(&seen{a, 1, "resize 1"})

	nack := send(job(b, 1, "fail"))
	if nack.ID != b || nack.Attempt != 1 || nack.Code != 42 || nack.Err != "busy" || nack.Flags&foreign.FlagNack == 0 {
		t.Fatalf("got id %x attempt %d code %d err %q flags %d, want id %x attempt 1, code 42 busy, flag nack", nack.ID, nack.Attempt, nack.Code, nack.Err, nack.Flags, b)
	}
	handled(&seen{b, 1, "fail"})

	// The first job resent (same id, attempt 2): acked, not run again.
	if ack := send(job(a, 2, "resize 1")); ack.ID != a || ack.Attempt != 2 || ack.Flags != 0 || ack.Err != "" {
		t.Fatalf("resend: got id %x attempt %d flags %d err %q, want an ack of %x attempt 2", ack.ID, ack.Attempt, ack.Flags, ack.Err, a)
	}
	handled(nil)

	// Two jobs with a zero id, then two with no header keys at all (the
	// least WIRE.md allows): each runs.
	for _, tc := range []struct {
		frame   []byte
		attempt int
		body    string
	}{
		{job([16]byte{}, 1, "anon"), 1, "anon"},
		{job([16]byte{}, 1, "anon"), 1, "anon"},
		{[]byte{1, 5, 0x80, 'x'}, 1, "x"}, // key 6 absent: attempt 1, as WIRE.md says
		{[]byte{1, 5, 0x80, 'x'}, 1, "x"},
	} {
		if ack := send(tc.frame); ack.ID != [16]byte{} || ack.Flags != 0 || ack.Err != "" {
			t.Fatalf("job % x: got id %x flags %d err %q, want a plain ack with a zero id", tc.frame, ack.ID, ack.Flags, ack.Err)
		}
		handled(&seen{spmesh.ID{}, tc.attempt, tc.body})
	}

	// A raw body: a nack with code -3 and WIRE.md's message, not run.
	const rawHelloErr = "spmesh: decode error: envelope: not an spmesh envelope: first byte 0x68 'h', want version 0x01 (or, on pub/sub frames, a topic and 0x00 first); see WIRE.md"
	if nack := send([]byte("hello")); nack.Code != -3 || nack.Err != rawHelloErr || nack.Flags&foreign.FlagNack == 0 {
		t.Fatalf("raw job: got code %d error %q flags %d, want -3, %q, nack", nack.Code, nack.Err, nack.Flags, rawHelloErr)
	}
	handled(nil)

	if st := w.Stats(); st.Acked != 5 || st.HandlerErrors != 1 || st.Duplicates != 1 || st.DecodeErrors != 1 {
		t.Fatalf("got %+v, want 5 acked, 1 nacked, 1 duplicate, 1 decode error", st)
	}
}

// nngcat --req sending a job envelope built from WIRE.md's job example
// (from a file: the bytes are not text) gets the ack.
func TestNNGCatJobToWorker(t *testing.T) {
	path := testutil.NNGCat(t)
	ran := make(chan string, 1)
	w := mustWorker(t, pipeline.HandlerFunc(func(ctx context.Context, job *pipeline.Job) error {
		ran <- string(job.Data)
		return nil
	}), pipeline.WithCodec(spmesh.Raw))
	addr := listen(t, w, "tcp")
	id := [16]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	e := foreign.Envelope{Kind: foreign.KindJob, ID: id, Attempt: 2, Body: []byte("hi")}
	f := filepath.Join(t.TempDir(), "job")
	if err := os.WriteFile(f, e.Append(nil), 0o600); err != nil {
		t.Fatal(err)
	}
	out := <-testutil.StartNNGCat(t, path, 30*time.Second, "--req", "--dial", addr, "--raw", "--file", f, "--count", "1", "--interval", "10")
	if out.Err != nil {
		t.Fatalf("nngcat: %v (stderr %q)", out.Err, out.Stderr)
	}
	ack, err := foreign.Parse([]byte(out.Stdout))
	if err != nil {
		t.Fatalf("ack % x: %v", out.Stdout, err)
	}
	if ack.Kind != foreign.KindAck || ack.ID != id || ack.Attempt != 2 || ack.Flags != 0 || ack.Err != "" {
		t.Fatalf("got %+v, want an ack of the job", ack)
	}
	if got := <-ran; got != "hi" {
		t.Fatalf("handler got %q, want hi", got)
	}
}

// Push/pull with a peer written from WIRE.md alone: a foreign PULL gets
// a Pusher's push envelopes (kind 4: id, time, headers, body), and a
// Puller delivers a foreign PUSH's (the least one, an empty map, too).
func TestForeignPushPull(t *testing.T) {
	p := mustPusher(t, pipeline.WithCodec(spmesh.Raw))
	c, err := foreign.Dial(listen(t, p, "tcp"), foreign.Pull)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peers(t, p, 1)
	ctx := ctxT(t, 30*time.Second)
	if err := p.PushHeader(ctx, spmesh.Header{"k": "v"}, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	f, err := c.Recv(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e, err := foreign.Parse(f)
	if err != nil {
		t.Fatalf("frame % x: %v", f, err)
	}
	if e.Kind != foreign.KindPush || e.ID == ([16]byte{}) || e.Time == 0 || e.Headers["k"] != "v" || string(e.Body) != "hi" {
		t.Fatalf("got %+v, want a push (4) with an id, a time, header k=v, body hi", e)
	}

	pl := mustPuller(t, pipeline.WithCodec(spmesh.Raw))
	c2, err := foreign.Dial(listen(t, pl, "tcp"), foreign.Push)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	var id [16]byte
	id[0] = 9
	now := time.Now().Truncate(time.Microsecond)
	for _, b := range [][]byte{
		(&foreign.Envelope{Kind: foreign.KindPush, ID: id, Time: now.UnixNano(), Headers: map[string]string{"k": "w"}, Body: []byte("one")}).Append(nil),
		{1, 4, 0x80, 't', 'w', 'o'},
	} {
		if err := c2.Send(b); err != nil {
			t.Fatal(err)
		}
	}
	m, err := pl.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != spmesh.ID(id) || !m.Time.Equal(now) || m.Header["k"] != "w" || string(m.Data) != "one" {
		t.Fatalf("got id %x time %v header %v data %q, want %x %v k=w one", m.ID, m.Time, m.Header, m.Data, id, now)
	}
	if m, err = pl.Next(ctx); err != nil || string(m.Data) != "two" || m.ID != (spmesh.ID{}) {
		t.Fatalf("got %+v, %v, want two with a zero id", m, err)
	}
}

// Over spmesh's TCP transport, a foreign PUSH frame over the Puller's size
// limit closes the connection (PUSH has no reply channel to say why) and
// is counted in TooLarge and Dropped (WIRE.md section 1).
func TestForeignPushTooLarge(t *testing.T) {
	pl := mustPuller(t, pipeline.WithCodec(spmesh.Raw), pipeline.WithMaxMessageSize(1024))
	c, err := foreign.Dial(listen(t, pl, "tcp"), foreign.Push)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e := foreign.Envelope{Kind: foreign.KindPush, ID: [16]byte{1}, Body: make([]byte, 5000)}
	if err := c.Send(e.Append(nil)); err != nil {
		t.Fatal(err)
	}
	// A PULL never sends: the only thing to read is the connection's end.
	if _, err := c.Recv(10 * time.Second); err == nil || err == foreign.ErrTimeout {
		t.Fatalf("got %v, want the connection closed", err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if st := pl.Stats(); st.TooLarge != 1 || st.Dropped != 1 || st.DroppedTooLarge != 1 {
			return fmt.Errorf("got %+v, want 1 too large, 1 dropped (too large)", st)
		}
		return nil
	})
}
