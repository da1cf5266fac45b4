package reqrep_test

import (
	"context"
	"crypto/rand"
	"errors"
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
// no body; a request using every latitude WIRE.md gives a decoder is
// taken; a raw request gets code -3 and the text WIRE.md gives.
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

	// What WIRE.md says a decoder accepts: keys in any order, the id as a
	// str of 16 bytes, integers in wider encodings than needed, an
	// unknown key (99) with a nested value, skipped.
	lenient := []byte{1, 2, 0x84,
		0x06, 0xcf, 0, 0, 0, 0, 0, 0, 0, 3, // key 6 attempt 3, as uint 64
		0x63, 0x81, 0xa1, 'x', 0x92, 0xc0, 0x81, 0x01, 0x02, // key 99: {"x": [nil, {1: 2}]}
		0x02, 0xd3, 0, 0, 0, 0, 0, 0, 0, 1, // key 2 time 1, as int 64
		0x01, 0xb0} // key 1 id: str 16
	lenient = append(append(lenient, id[:]...), "lenient"...)
	rep = call(3, lenient)
	if rep.ID != id || rep.Attempt != 3 || string(rep.Body) != "LENIENT" || rep.Keys[8] {
		t.Fatalf("lenient request: got %+v, want id %x attempt 3 body LENIENT", rep, id)
	}
	if s := <-ran; s.id != spmesh.ID(id) || s.attempt != 3 || s.body != "lenient" || !s.deadline.IsZero() {
		t.Fatalf("lenient request: handler saw %+v", s)
	}

	rep = call(4, []byte("hello"))
	if rep.Code != -3 || rep.Err != rawHelloErr {
		t.Fatalf("raw request: got code %d error %q, want -3 and the text of WIRE.md section 4", rep.Code, rep.Err)
	}
	if st := r.Stats(); st.Received != 3 || st.DecodeErrors != 1 {
		t.Fatalf("got %+v, want 3 received, 1 decode error", st)
	}
}

// Over spmesh's TCP transport, a foreign request over the Replier's size
// limit gets an error reply with code -2, counted in TooLarge, and the
// connection stays open for the next request (WIRE.md section 1).
func TestForeignRequestTooLarge(t *testing.T) {
	r := mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, q *reqrep.Request) (any, error) {
		return q.Data, nil
	}), reqrep.WithListen("tcp://127.0.0.1:0"), reqrep.WithCodec(spmesh.Raw), reqrep.WithMaxMessageSize(1024))
	c, err := foreign.Dial(r.Addrs()[0], foreign.Req)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id := [16]byte{1}
	e := foreign.Envelope{Kind: foreign.KindRequest, ID: id, Attempt: 1, Body: make([]byte, 5000)}
	b, err := c.Request(1, e.Append(nil), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := foreign.Parse(b)
	if err != nil || rep.Kind != foreign.KindReply || rep.ID != id || rep.Code != -2 || !strings.Contains(rep.Err, "too large") {
		t.Fatalf("got %+v, %v, want a reply to %x with code -2, too large", rep, err, id)
	}
	e.Body = []byte("small")
	if b, err = c.Request(2, e.Append(nil), 10*time.Second); err != nil {
		t.Fatalf("after the oversized request: %v", err)
	}
	if rep, err = foreign.Parse(b); err != nil || string(rep.Body) != "small" {
		t.Fatalf("got %+v, %v, want body small", rep, err)
	}
	if st := r.Stats(); st.TooLarge != 1 || st.Received != 1 {
		t.Fatalf("got %+v, want 1 too large, 1 received", st)
	}
}

// A replier written from WIRE.md alone (a REP over SP/TCP) serves an
// ordinary Requester: it gets the request envelope after the SP request id
// (high bit set), and a reply that echoes both ids (SP and key 1) with
// kind 3 completes the call; a reply with another id (key 1) or kind
// fails the call with an error wrapping spmesh.ErrDecode, counted (WIRE.md
// section 4).
func TestForeignReplier(t *testing.T) {
	rq := mustRequester(t, reqrep.WithCodec(spmesh.Raw), reqrep.WithWaitForReplier())
	addr, err := rq.Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := foreign.Dial(addr, foreign.Rep)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t, 30*time.Second)
	for i, bad := range []string{"", "id", "kind"} {
		type result struct {
			reply []byte
			err   error
		}
		done := make(chan result, 1)
		go func() {
			var reply []byte
			err := rq.Request(ctx, []byte("ping"), &reply)
			done <- result{reply, err}
		}()
		f, err := c.Recv(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(f) < 4 || f[0]&0x80 == 0 {
			t.Fatalf("request % x: want a 4-byte SP request id with the high bit set first", f)
		}
		q, err := foreign.Parse(f[4:])
		if err != nil || q.Kind != foreign.KindRequest || q.ID == ([16]byte{}) || q.Attempt != 1 || string(q.Body) != "ping" {
			t.Fatalf("got %+v, %v, want a request (2) with an id, attempt 1, body ping", q, err)
		}
		rep := foreign.Envelope{Kind: foreign.KindReply, ID: q.ID, Attempt: q.Attempt, Body: []byte("pong")}
		switch bad {
		case "id":
			rep.ID[0] ^= 0xff
		case "kind":
			rep.Kind = foreign.KindAck
		}
		if err := c.Send(append(f[:4:4], rep.Append(nil)...)); err != nil {
			t.Fatal(err)
		}
		r := <-done
		switch {
		case bad == "" && (r.err != nil || string(r.reply) != "pong"):
			t.Fatalf("got %q, %v, want pong", r.reply, r.err)
		case bad != "" && !errors.Is(r.err, spmesh.ErrDecode):
			t.Fatalf("reply with another %s: got %q, %v, want an error wrapping ErrDecode", bad, r.reply, r.err)
		}
		if st := rq.Stats(); st.DecodeErrors != uint64(i) {
			t.Fatalf("got %+v, want %d decode errors", st, i)
		}
	}
}

// rawHelloErr is WIRE.md's error message (section 4) for the raw body "hello".
const rawHelloErr = "spmesh: decode error: envelope: not an spmesh envelope: first byte 0x68 'h', want version 0x01 (or, on pub/sub frames, a topic and 0x00 first); see WIRE.md"
