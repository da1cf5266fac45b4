package survey_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/survey"
)

// one runs a survey expecting the respondent named name and returns its
// only response.
func one(t *testing.T, s *survey.Surveyor, q any, name string) *survey.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rs, err := s.Survey(ctx, q, survey.WithTimeout(30*time.Second), survey.WithExpect(name))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	got := collect(t, rs)
	if len(got) != 1 || got[0].From != name {
		t.Fatalf("got %d responses (%v), want one from %s", len(got), got, name)
	}
	return got[0]
}

// A question over a respondent's limit is answered, without running the
// handler, with an error that is ErrTooLarge; both sides count it.
func TestQuestionTooLargeForRespondent(t *testing.T) {
	addr := testutil.FreeTCP(t)
	s := mustSurveyor(t, survey.WithListen(addr), survey.WithMaxMessageSize(16<<20))
	var ran atomic.Int64
	r := mustRespondent(t, survey.HandlerFunc(func(ctx context.Context, q *survey.Question) (any, error) {
		ran.Add(1)
		return "ok", nil
	}), survey.WithDial(addr), survey.WithName("small"), survey.WithMaxMessageSize(1<<20))
	peers(t, s, 1)
	resp := one(t, s, make([]byte, 4<<20), "small")
	if !errors.Is(resp.Err, spmesh.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", resp.Err)
	}
	if ss, rst := s.Stats(), r.Stats(); ran.Load() != 0 || rst.Received != 0 || rst.TooLarge != 1 || ss.TooLarge != 1 {
		t.Fatalf("got handler run %d times, respondent %d received, %d too large, surveyor %d too large; want 0, 0, 1, 1",
			ran.Load(), rst.Received, rst.TooLarge, ss.TooLarge)
	}
}

// An answer over the surveyor's limit becomes an error response of that
// respondent that is ErrTooLarge, instead of a missing answer.
func TestAnswerTooLargeForSurveyor(t *testing.T) {
	addr := testutil.FreeTCP(t)
	s := mustSurveyor(t, survey.WithListen(addr), survey.WithMaxMessageSize(1<<20))
	mustRespondent(t, survey.HandlerFunc(func(ctx context.Context, q *survey.Question) (any, error) {
		return make([]byte, 4<<20), nil
	}), survey.WithDial(addr), survey.WithName("big"), survey.WithMaxMessageSize(16<<20))
	peers(t, s, 1)
	resp := one(t, s, "q", "big")
	if !errors.Is(resp.Err, spmesh.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", resp.Err)
	}
	if st := s.Stats(); st.TooLarge != 1 || st.DecodeErrors != 0 {
		t.Fatalf("got %d too large, %d decode errors; want 1, 0", st.TooLarge, st.DecodeErrors)
	}
}

// An answer over the respondent's own limit goes out as an error that is
// ErrTooLarge.
func TestAnswerTooLargeLocally(t *testing.T) {
	addr := testutil.FreeTCP(t)
	s := mustSurveyor(t, survey.WithListen(addr))
	r := mustRespondent(t, survey.HandlerFunc(func(ctx context.Context, q *survey.Question) (any, error) {
		return make([]byte, 2<<20), nil
	}), survey.WithDial(addr), survey.WithName("r"), survey.WithMaxMessageSize(1<<20))
	peers(t, s, 1)
	if resp := one(t, s, "q", "r"); !errors.Is(resp.Err, spmesh.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", resp.Err)
	}
	if st := r.Stats(); st.TooLarge != 1 {
		t.Fatalf("got %d too large, want 1", st.TooLarge)
	}
	if _, err := s.Survey(context.Background(), make([]byte, 16<<20)); !errors.Is(err, spmesh.ErrTooLarge) {
		t.Fatalf("survey over the limit: got %v, want ErrTooLarge", err)
	}
}

func TestSendTimeoutInvalid(t *testing.T) {
	for name, f := range map[string]func() error{
		"zero":        func() error { _, err := survey.NewRespondent(echo("r"), survey.WithSendTimeout(0)); return err },
		"on surveyor": func() error { _, err := survey.NewSurveyor(survey.WithSendTimeout(time.Second)); return err },
	} {
		if err := f(); !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), "WithSendTimeout") {
			t.Errorf("%s: got %v, want ErrInvalidOption naming WithSendTimeout", name, err)
		}
	}
}
