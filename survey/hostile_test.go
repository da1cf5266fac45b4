package survey_test

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/survey"
	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/xrespondent"
	"go.nanomsg.org/mangos/v3/protocol/xsurveyor"
)

// frame builds a valid envelope of kind k with v as its msgpack body.
func frame(t testing.TB, k wire.Kind, from string, v any) []byte {
	t.Helper()
	b := wire.AppendHeader(nil, &wire.Msg{Kind: k, Time: time.Now().UnixNano(), From: from})
	body, err := spmesh.Msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, body...)
}

// hostileRespondent answers a survey of s with garbage frames from a raw
// mangos respondent: each is counted as a decode error, and the survey
// still delivers a valid answer sent after them.
func hostileRespondent(t *testing.T, s io.Closer, addr string, frames [][]byte) {
	sv := s.(*survey.Surveyor)
	raw, err := xrespondent.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.Dial(addr); err != nil {
		t.Fatal(err)
	}
	peers(t, sv, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rs, err := sv.Survey(ctx, ping{N: 1}, survey.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	raw.SetOption(mangos.OptionRecvDeadline, 10*time.Second)
	q, err := raw.RecvMsg()
	if err != nil {
		t.Fatalf("raw respondent: got %v, want the survey", err)
	}
	send := func(body []byte) {
		m := mangos.NewMessage(len(body))
		m.Header = append(m.Header[:0], q.Header...) // pipe id, then survey id
		m.Body = append(m.Body, body...)
		if err := raw.SendMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range frames {
		send(f)
	}
	send(frame(t, wire.KindSurvey, "raw", "a survey is not an answer"))
	send(frame(t, wire.KindResponse, "raw", pong{N: 1, From: "raw"}))
	r, err := rs.Next(ctx)
	if err != nil {
		t.Fatalf("after garbage: got %v, want the valid answer", err)
	}
	if p, err := spmesh.Decode[pong](r); err != nil || p.N != 1 || r.From != "raw" {
		t.Fatalf("got %+v, %v from %q, want pong 1 from raw", p, err, r.From)
	}
	if st := sv.Stats(); st.DecodeErrors != uint64(len(frames)+1) || st.Received != 1 {
		t.Fatalf("got %+v, want %d decode errors, 1 received", st, len(frames)+1)
	}
}

// TestHostileSurveyor sends garbage surveys to a respondent from a raw
// mangos surveyor: each is counted and answered with a decode error (code
// spmesh.CodeDecode) without reaching the handler, and a valid survey sent
// after them is answered.
func TestHostileSurveyor(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		raw, err := xsurveyor.NewSocket()
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		var attached atomic.Int32
		raw.SetPipeEventHook(func(ev mangos.PipeEvent, p mangos.Pipe) {
			if ev == mangos.PipeEventAttached {
				attached.Add(1)
			}
		})
		if err := raw.Listen(addr); err != nil {
			t.Fatal(err)
		}
		r := mustRespondent(t, echo("victim"), survey.WithDial(addr), survey.WithName("victim"))
		testutil.Eventually(t, 10*time.Second, func() error {
			if attached.Load() == 0 {
				return fmt.Errorf("respondent not attached")
			}
			return nil
		})
		frames := append(testutil.Garbage(), frame(t, wire.KindResponse, "x", "an answer is not a survey"))
		send := func(id byte, body []byte) {
			m := mangos.NewMessage(len(body))
			m.Header = append(m.Header[:0], 0x80, 0, 0, id) // a survey id
			m.Body = append(m.Body, body...)
			if err := raw.SendMsg(m); err != nil {
				t.Fatal(err)
			}
		}
		for i, f := range frames {
			send(byte(i+1), f)
		}
		testutil.Eventually(t, 10*time.Second, func() error {
			if st := r.Stats(); st.DecodeErrors != uint64(len(frames)) {
				return fmt.Errorf("got %+v, want %d decode errors", st, len(frames))
			}
			return nil
		})
		send(0x7f, frame(t, wire.KindSurvey, "", ping{N: 5}))
		raw.SetOption(mangos.OptionRecvDeadline, 10*time.Second)
		// Answers come in any order (the respondent runs surveys
		// concurrently): one per frame, keyed by survey id.
		seen := map[byte]bool{}
		for range len(frames) + 1 {
			m, err := raw.RecvMsg()
			if err != nil {
				t.Fatalf("raw surveyor: got %v after %d answers, want %d", err, len(seen), len(frames)+1)
			}
			if len(m.Header) < 4 {
				t.Fatalf("answer without a survey id: header % x", m.Header)
			}
			id := m.Header[len(m.Header)-1]
			seen[id] = true
			var env wire.Msg
			if err := wire.Decode(m.Body, &env); err != nil || env.Kind != wire.KindResponse || env.From != "victim" {
				t.Fatalf("survey %d: got %+v, %v, want a response from victim", id, env, err)
			}
			if id != 0x7f {
				if env.Code != spmesh.CodeDecode || env.Err == "" || len(env.Body) != 0 {
					t.Fatalf("garbage %d: got code %d error %q body % x, want a decode error answer", id, env.Code, env.Err, env.Body)
				}
				continue
			}
			var p pong
			if err := spmesh.Msgpack.Unmarshal(env.Body, &p); err != nil || p.N != 5 || env.Err != "" {
				t.Fatalf("got %+v, %v (error %q), want pong 5", p, err, env.Err)
			}
		}
		if len(seen) != len(frames)+1 {
			t.Fatalf("got answers to surveys %v, want one per frame", seen)
		}
		testutil.Eventually(t, 10*time.Second, func() error {
			if st := r.Stats(); st.Received != 1 || st.Sent != uint64(len(frames)+1) || st.HandlerErrors != 0 {
				return fmt.Errorf("got %+v, want 1 survey received, %d answers sent, no handler errors", st, len(frames)+1)
			}
			return nil
		})
	})
}
