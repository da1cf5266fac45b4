package survey_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/survey"
)

func bareCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Bare on both ends: the question and the answers are the bytes alone;
// a respondent whose handler fails, panics or declines sends nothing
// (counted); answers come from the connection's address, with no name,
// time, decline or error.
func TestBareBothEnds(t *testing.T) {
	addr := testutil.FreeTCP(t)
	s := mustSurveyor(t, survey.WithListen(addr), survey.WithBareFrames(), survey.WithCodec(spmesh.Raw), survey.WithTimeout(time.Second))
	h := survey.HandlerFunc(func(ctx context.Context, q *survey.Question) (any, error) {
		if _, ok := ctx.Deadline(); ok || q.ID != (spmesh.ID{}) || !q.Time.IsZero() || q.Header != nil {
			return nil, fmt.Errorf("got question %+v with a deadline or envelope fields", q)
		}
		switch string(q.Data) {
		case "fail":
			return nil, errors.New("refused")
		case "panic":
			panic("boom")
		case "decline":
			return nil, survey.ErrDeclined
		}
		return bytes.ToUpper(q.Data), nil
	})
	r := mustRespondent(t, h, survey.WithDial(addr), survey.WithBareFrames(), survey.WithCodec(spmesh.Raw))
	ctx := bareCtx(t, 30*time.Second)
	if err := s.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Survey(ctx, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t, rs)
	if len(got) != 1 || string(got[0].Data) != "HELLO" || got[0].Declined || got[0].Err != nil || !got[0].Time.IsZero() {
		t.Fatalf("got %+v, want one answer HELLO with no envelope fields", got)
	}
	if from := got[0].From; !strings.HasPrefix(from, "127.0.0.1:") {
		t.Fatalf("got From %q, want the respondent's address", from)
	}
	for _, q := range []string{"fail", "panic", "decline"} {
		rs, err := s.Survey(ctx, q, survey.WithTimeout(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if got := collect(t, rs); len(got) != 0 {
			t.Fatalf("%s: got %d answers (%q), want none", q, len(got), got[0].Data)
		}
	}
	st := r.Stats()
	if st.Received != 4 || st.Sent != 1 || st.HandlerErrors != 2 || st.Panics != 1 || st.Declined != 1 || st.DecodeErrors != 0 {
		t.Fatalf("got %+v, want 4 received, 1 sent, 2 errors (1 a panic), 1 declined", st)
	}
}

// What a bare survey cannot carry is refused, naming the cause: headers,
// and respondents expected by name.
func TestBareRefusals(t *testing.T) {
	addr := testutil.Inproc(t)
	s := mustSurveyor(t, survey.WithListen(addr), survey.WithBareFrames())
	ctx := bareCtx(t, 10*time.Second)
	if _, err := s.SurveyHeader(ctx, spmesh.Header{"k": "v"}, "q"); !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), "bare") {
		t.Fatalf("survey with headers: got %v, want ErrInvalidOption naming bare frames", err)
	}
	if _, err := s.Survey(ctx, "q", survey.WithExpect("a")); !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), "WithExpect") {
		t.Fatalf("survey with WithExpect: got %v, want ErrInvalidOption naming WithExpect", err)
	}
	for _, o := range []survey.Option{survey.WithExpect("a"), survey.WithExpectFunc(func() []string { return nil })} {
		if _, err := survey.NewSurveyor(survey.WithBareFrames(), o); !errors.Is(err, spmesh.ErrInvalidOption) {
			t.Fatalf("NewSurveyor bare with %T: got %v, want ErrInvalidOption", o, err)
		}
	}
	if st := s.Stats(); st.Sent != 0 {
		t.Fatalf("got %d sent, want 0", st.Sent)
	}
}

// Size limits hold: a question over the surveyor's limit fails with
// ErrTooLarge; one over a bare respondent's limit is dropped without
// calling the handler and counted (a bare frame has no id to answer an
// error with); an answer over the respondent's own limit is not sent
// (counted).
func TestBareTooLarge(t *testing.T) {
	addr := testutil.FreeTCP(t)
	s := mustSurveyor(t, survey.WithListen(addr), survey.WithBareFrames(), survey.WithCodec(spmesh.Raw), survey.WithMaxMessageSize(4096), survey.WithTimeout(300*time.Millisecond))
	r := mustRespondent(t, survey.HandlerFunc(func(ctx context.Context, q *survey.Question) (any, error) {
		if string(q.Data) == "big" {
			return make([]byte, 2048), nil
		}
		return []byte("ok"), nil
	}), survey.WithDial(addr), survey.WithBareFrames(), survey.WithCodec(spmesh.Raw), survey.WithMaxMessageSize(1024))
	ctx := bareCtx(t, 30*time.Second)
	if err := s.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Survey(ctx, make([]byte, 4097)); !errors.Is(err, spmesh.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	for _, q := range [][]byte{make([]byte, 2000), []byte("big")} {
		rs, err := s.Survey(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if got := collect(t, rs); len(got) != 0 {
			t.Fatalf("got %d answers, want none", len(got))
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if st := r.Stats(); st.TooLarge != 2 || st.Sent != 0 || st.HandlerErrors != 1 || st.Dropped != 1 || st.DroppedTooLarge != 1 {
			return fmt.Errorf("got %d too large, %d sent, %d errors, %d dropped (%d too large); want 2, 0, 1, 1 (1)",
				st.TooLarge, st.Sent, st.HandlerErrors, st.Dropped, st.DroppedTooLarge)
		}
		return nil
	})
	// The respondent still answers what fits (its connection came back if
	// the oversized question closed it).
	testutil.Eventually(t, 10*time.Second, func() error {
		rs, err := s.Survey(ctx, []byte("small"))
		if err != nil {
			return err
		}
		if got := collect(t, rs); len(got) != 1 || string(got[0].Data) != "ok" {
			return fmt.Errorf("got %d answers, want ok", len(got))
		}
		return nil
	})
}

// A bare Surveyor keeps the contract of every socket (close, ctx,
// options). The hostile-peer part does not apply: to a bare socket any
// bytes are a question or an answer.
func bareSurveyorPattern() testutil.Pattern {
	return testutil.Pattern{
		Open: func(t *testing.T, addr string) io.Closer {
			return mustSurveyor(t, survey.WithListen(addr), survey.WithBareFrames(), survey.WithCodec(spmesh.Raw))
		},
		Listens: true,
		Wait: func(ctx context.Context, s io.Closer) error {
			rs, err := s.(*survey.Surveyor).Survey(ctx, []byte("q"), survey.WithTimeout(time.Hour))
			if err != nil {
				return err
			}
			defer rs.Close()
			_, err = rs.Next(ctx)
			return err
		},
		Invalid: map[string]func() error{
			"expect": func() error {
				_, err := survey.NewSurveyor(survey.WithBareFrames(), survey.WithExpect("a"))
				return err
			},
			"expect func": func() error {
				_, err := survey.NewSurveyor(survey.WithBareFrames(), survey.WithExpectFunc(func() []string { return nil }))
				return err
			},
			"concurrency": func() error {
				_, err := survey.NewRespondent(echo(""), survey.WithBareFrames(), survey.WithConcurrency(0))
				return err
			},
		},
	}
}
