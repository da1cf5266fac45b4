package survey_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/foreign"
	"github.com/spmesh/spmesh/survey"
)

// A surveyor written from WIRE.md alone (internal/foreign: standard
// library only, a SURVEYOR over SP/TCP) asks an ordinary Respondent: the
// answer (kind 8) echoes the survey's id and carries the respondent's name
// (key 10) and the body; a decline sets flag bit 0; a handler error comes
// back as keys 8 and 9; a raw question gets code -3 and WIRE.md's text.
func TestForeignSurveyor(t *testing.T) {
	r := mustRespondent(t, survey.HandlerFunc(func(ctx context.Context, q *survey.Question) (any, error) {
		switch string(q.Data) {
		case "busy?":
			return nil, survey.ErrDeclined
		case "fail":
			return nil, spmesh.Errorf(42, "broken")
		}
		return []byte(strings.ToUpper(string(q.Data))), nil
	}), survey.WithListen("tcp://127.0.0.1:0"), survey.WithCodec(spmesh.Raw), survey.WithName("node-a"))
	c, err := foreign.Dial(r.Addrs()[0], foreign.Surveyor)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var id [16]byte
	rand.Read(id[:])
	ask := func(sp uint32, body string, raw bool) *foreign.Envelope {
		t.Helper()
		q := foreign.Envelope{Kind: foreign.KindSurvey, ID: id, Time: time.Now().UnixNano(),
			Deadline: time.Now().Add(time.Minute).UnixNano(), Body: []byte(body)}
		frame := q.Append(nil)
		if raw {
			frame = []byte(body)
		}
		b, err := c.Request(sp, frame, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		a, err := foreign.Parse(b)
		if err != nil {
			t.Fatalf("answer % x: %v", b, err)
		}
		if a.Kind != foreign.KindResponse || a.From != "node-a" {
			t.Fatalf("got kind %d from %q, want an answer (8) from node-a", a.Kind, a.From)
		}
		return a
	}
	if a := ask(1, "hi", false); a.ID != id || string(a.Body) != "HI" || a.Flags != 0 || a.Keys[8] || a.Keys[9] {
		t.Fatalf("got %+v, want id %x body HI", a, id)
	}
	if a := ask(2, "busy?", false); a.ID != id || a.Flags&foreign.FlagDeclined == 0 || len(a.Body) != 0 || a.Keys[9] {
		t.Fatalf("got %+v, want id %x declined", a, id)
	}
	if a := ask(3, "fail", false); a.ID != id || a.Code != 42 || a.Err != "broken" || len(a.Body) != 0 {
		t.Fatalf("got %+v, want id %x code 42 broken", a, id)
	}
	const rawHelloErr = "spmesh: decode error: envelope: not an spmesh envelope: first byte 0x68 'h', want version 0x01 (or, on pub/sub frames, a topic and 0x00 first); see WIRE.md"
	if a := ask(4, "hello", true); a.Code != -3 || a.Err != rawHelloErr {
		t.Fatalf("raw question: got code %d error %q, want -3, %q", a.Code, a.Err, rawHelloErr)
	}
	if st := r.Stats(); st.Received != 3 || st.DecodeErrors != 1 || st.Declined != 1 || st.HandlerErrors != 1 {
		t.Fatalf("got %+v, want 3 received, 1 decode error, 1 declined, 1 error", st)
	}
}
