package survey_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/survey"
	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/xrespondent"
)

// records is a slog handler keeping every record.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *records) WithGroup(string) slog.Handler            { return r }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	return nil
}

// TestBadAnswerWarnedOnce: a peer's bad answers are refused traffic: logged
// at Warn with its address, through the per-peer limiter (one line for a
// burst), each counted in DecodeErrors.
func TestBadAnswerWarnedOnce(t *testing.T) {
	addr := testutil.Inproc(t)
	logs := &records{}
	s := mustSurveyor(t, survey.WithListen(addr), survey.WithLogger(slog.New(logs)))
	raw, err := xrespondent.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.Dial(addr); err != nil {
		t.Fatal(err)
	}
	peers(t, s, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rs, err := s.Survey(ctx, ping{N: 1}, survey.WithTimeout(time.Minute))
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
		m.Header = append(m.Header[:0], q.Header...)
		m.Body = append(m.Body, body...)
		if err := raw.SendMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	const bad = 3
	for range bad {
		send([]byte("not an envelope"))
	}
	send(frame(t, wire.KindResponse, "raw", pong{N: 1, From: "raw"}))
	if _, err := rs.Next(ctx); err != nil {
		t.Fatalf("got %v, want the valid answer", err)
	}
	if st := s.Stats(); st.DecodeErrors != bad {
		t.Fatalf("got %d decode errors, want %d", st.DecodeErrors, bad)
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	var warns []slog.Record
	for _, r := range logs.recs {
		if r.Message == "spmesh: discarded bad survey answer" {
			warns = append(warns, r)
		}
	}
	if len(warns) != 1 || warns[0].Level != slog.LevelWarn {
		t.Fatalf("got %d lines about bad answers (%v), want 1 at Warn", len(warns), warns)
	}
	remote := ""
	warns[0].Attrs(func(a slog.Attr) bool {
		if a.Key == "remote" {
			remote = a.Value.String()
		}
		return true
	})
	if remote == "" {
		t.Errorf("got no remote attribute, want the peer's address")
	}
}
