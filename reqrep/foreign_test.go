package reqrep_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/foreign"
	"github.com/spmesh/spmesh/reqrep"
)

// A requester written from WIRE.md alone (internal/foreign: standard
// library only, a REQ over SP/TCP) calls an ordinary Replier: the reply
// (kind 3) echoes the id and attempt, carries the body, the reply headers
// and the replier's credit; the handler sees the id, attempt, headers,
// deadline and body sent; a handler error comes back as keys 8 and 9 with
// no body; a raw request gets code -3 and the text WIRE.md gives.
func TestForeignRequester(t *testing.T) {
	type seen struct {
		id       spmesh.ID
		attempt  int
		hdr      string
		deadline time.Time
		body     string
	}
	ran := make(chan seen, 4)
	r := mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, q *reqrep.Request) (any, error) {
		ran <- seen{q.ID, q.Attempt, q.Header["k"], q.Deadline, string(q.Data)}
		if string(q.Data) == "fail" {
			return nil, spmesh.Errorf(42, "no such order")
		}
		q.SetReplyHeader("r", "1")
		return []byte(strings.ToUpper(string(q.Data))), nil
	}), reqrep.WithListen("tcp://127.0.0.1:0"), reqrep.WithCodec(spmesh.Raw), reqrep.WithCredit(16))
	c, err := foreign.Dial(r.Addrs()[0], foreign.Req)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	call := func(sp uint32, frame []byte) *foreign.Envelope {
		t.Helper()
		b, err := c.Request(sp, frame, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := foreign.Parse(b)
		if err != nil {
			t.Fatalf("reply % x: %v", b, err)
		}
		if rep.Kind != foreign.KindReply || rep.Credit != 16 {
			t.Fatalf("got kind %d credit %d, want a reply (3) with credit 16", rep.Kind, rep.Credit)
		}
		return rep
	}
	var id [16]byte
	rand.Read(id[:])
	deadline := time.Now().Add(time.Minute).Truncate(time.Microsecond)
	req := foreign.Envelope{Kind: foreign.KindRequest, ID: id, Time: time.Now().UnixNano(), Attempt: 1,
		Deadline: deadline.UnixNano(), Headers: map[string]string{"k": "v"}, Body: []byte("hi")}
	rep := call(1, req.Append(nil))
	if rep.ID != id || rep.Attempt != 1 || string(rep.Body) != "HI" || rep.Headers["r"] != "1" || rep.Keys[8] || rep.Keys[9] {
		t.Fatalf("got %+v, want id %x attempt 1 body HI header r=1, no error", rep, id)
	}
	if s := <-ran; s.id != spmesh.ID(id) || s.attempt != 1 || s.hdr != "v" || !s.deadline.Equal(deadline) || s.body != "hi" {
		t.Fatalf("handler saw %+v, want id %x attempt 1 header v deadline %v body hi", s, id, deadline)
	}

	req.Attempt, req.Body = 2, []byte("fail")
	rep = call(2, req.Append(nil))
	if rep.ID != id || rep.Attempt != 2 || rep.Code != 42 || rep.Err != "no such order" || len(rep.Body) != 0 {
		t.Fatalf("got %+v, want id %x attempt 2, code 42 no such order, no body", rep, id)
	}
	<-ran

	rep = call(3, []byte("hello"))
	if rep.Code != -3 || rep.Err != rawHelloErr {
		t.Fatalf("raw request: got code %d error %q, want -3 and the text of WIRE.md section 4", rep.Code, rep.Err)
	}
	if st := r.Stats(); st.Received != 2 || st.DecodeErrors != 1 {
		t.Fatalf("got %+v, want 2 received, 1 decode error", st)
	}
}

// rawHelloErr is WIRE.md's error message (section 4) for the raw body "hello".
const rawHelloErr = "spmesh: decode error: envelope: not an spmesh envelope: first byte 0x68 'h', want version 0x01 (or, on pub/sub frames, a topic and 0x00 first); see WIRE.md"
