package survey_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/survey"
)

// TestConformance runs the shared suite on both sides of survey, enveloped
// and bare, and the pair check on the two wired together.
func TestConformance(t *testing.T) {
	testutil.Conform(t, map[string]testutil.Pattern{
		"Surveyor":        surveyorPattern(),
		"Surveyor/bare":   bareSurveyorPattern(),
		"Respondent":      confRespondent(),
		"Respondent/bare": confRespondent(survey.WithBareFrames()),
	}, map[string]testutil.Pair{
		"Surveyor+Respondent":                 confPair(false),
		"Surveyor+Respondent/bare":            confPair(false, survey.WithBareFrames()),
		"Surveyor+Respondent/respondentBinds": confPair(true),
	})
}

// confAnswers answers every question with its index, after calling h.
func confAnswers(h func(ctx context.Context, i int) error) survey.Handler {
	return survey.HandlerFunc(func(ctx context.Context, q *survey.Question) (any, error) {
		var i int
		if err := q.Decode(&i); err != nil {
			return nil, err
		}
		if err := h(ctx, i); err != nil {
			return nil, err
		}
		return i, nil
	})
}

// confAsk surveys s's respondent (it waits for one to be connected) with
// i and checks that the first answer is i.
func confAsk(ctx context.Context, s *survey.Surveyor, i int) error {
	if err := s.WaitPeers(ctx, 1); err != nil {
		return err
	}
	rs, err := s.Survey(ctx, i, survey.WithTimeout(time.Minute))
	if err != nil {
		return err
	}
	defer rs.Close()
	r, err := rs.Next(ctx)
	if err != nil {
		return err
	}
	if r.Err != nil || r.Declined {
		return fmt.Errorf("answer to %d: error %v, declined %v", i, r.Err, r.Declined)
	}
	var got int
	if err := r.Decode(&got); err != nil {
		return err
	}
	if got != i {
		return fmt.Errorf("answer to %d: got %d", i, got)
	}
	return nil
}

// confRespondent is the serving side; it dials, as under discovery. The
// suite waits on WaitPeers and checks Drain and Close with a surveyor
// connected and a handler running.
func confRespondent(opts ...survey.Option) testutil.Pattern {
	open := func(t *testing.T, addr string, h func(ctx context.Context) error) io.Closer {
		r, err := survey.NewRespondent(confAnswers(func(ctx context.Context, _ int) error { return h(ctx) }),
			append(opts, survey.WithDial(addr))...)
		return testutil.Open(t, r, err)
	}
	nop := confAnswers(func(context.Context, int) error { return nil })
	var proto uint16 // bare: any bytes are a request, none hostile
	if len(opts) == 0 {
		proto = testutil.ProtoSurveyor
	}
	return testutil.Pattern{
		Open: func(t *testing.T, addr string) io.Closer {
			return open(t, addr, func(context.Context) error { return nil })
		},
		Invalid: map[string]func() error{
			"nil handler": func() error { _, err := survey.NewRespondent(nil, opts...); return err },
			"concurrency 0": func() error {
				_, err := survey.NewRespondent(nop, append(opts, survey.WithConcurrency(0))...)
				return err
			},
			"empty name": func() error { _, err := survey.NewRespondent(nop, append(opts, survey.WithName(""))...); return err },
			"surveyor-only": func() error {
				_, err := survey.NewRespondent(nop, append(opts, survey.WithTimeout(time.Second))...)
				return err
			},
			"tiny max size": func() error {
				_, err := survey.NewRespondent(nop, append(opts, survey.WithMaxMessageSize(1))...)
				return err
			},
			"bad address": func() error {
				_, err := survey.NewRespondent(nop, append(opts, survey.WithDial("foo://x"))...)
				return err
			},
		},
		Serve: &testutil.Serve{
			Open:  open,
			Proto: proto,
			Peer: func(t *testing.T, addr string) io.Closer {
				s, err := survey.NewSurveyor(append(opts, survey.WithListen(addr))...)
				return testutil.Open(t, s, err)
			},
			Call: func(ctx context.Context, peer io.Closer) error {
				return confAsk(ctx, peer.(*survey.Surveyor), 7)
			},
		},
	}
}

// confPair: a surveyor listens, one respondent dials it (the other way
// round when rev); survey i is the int i, answered with i.
func confPair(rev bool, opts ...survey.Option) testutil.Pair {
	return testutil.Pair{
		Open: func(t *testing.T, addr string, got func(int)) (io.Closer, io.Closer) {
			listen, dial := survey.WithListen(addr), survey.WithDial(addr)
			if rev {
				listen, dial = dial, listen
			}
			s, err := survey.NewSurveyor(append(opts, listen)...)
			a := testutil.Open(t, s, err)
			r, err := survey.NewRespondent(confAnswers(func(_ context.Context, i int) error { got(i); return nil }),
				append(opts, dial)...)
			return a, testutil.Open(t, r, err)
		},
		Send: func(ctx context.Context, a io.Closer, i int) error {
			return confAsk(ctx, a.(*survey.Surveyor), i)
		},
	}
}
