package survey_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/survey"
)

// Zero values and nil pointers decode to an error wrapping ErrDecode,
// through the method and through spmesh.Decode, never a panic.
func TestZeroValueDecode(t *testing.T) {
	for name, d := range map[string]spmesh.Decoder{
		"zero Question": &survey.Question{}, "nil Question": (*survey.Question)(nil),
		"zero Response": &survey.Response{}, "nil Response": (*survey.Response)(nil),
	} {
		var v string
		if err := d.Decode(&v); !errors.Is(err, spmesh.ErrDecode) {
			t.Errorf("%s: Decode = %v, want ErrDecode", name, err)
		}
		if _, err := spmesh.Decode[string](d); !errors.Is(err, spmesh.ErrDecode) {
			t.Errorf("spmesh.Decode[string](%s) = %v, want ErrDecode", name, err)
		}
	}
}

// Nil handlers are refused at construction.
func TestNilHandlerRefused(t *testing.T) {
	for name, h := range map[string]survey.Handler{
		"nil":               nil,
		"HandlerFunc(nil)":  survey.HandlerFunc(nil),
		"TypedHandler(nil)": survey.TypedHandler[string, string](nil),
	} {
		r, err := survey.NewRespondent(h)
		if !errors.Is(err, spmesh.ErrInvalidOption) {
			t.Errorf("NewRespondent(%s) = %v, want ErrInvalidOption", name, err)
		}
		if r != nil {
			r.Close()
		}
	}
}

// A Surveyor option given to a Respondent fails naming it.
func TestSidedOptionNamed(t *testing.T) {
	_, err := survey.NewRespondent(survey.TypedHandler(func(_ context.Context, _ *survey.Question, s string) (string, error) { return s, nil }),
		survey.WithExpectFunc(func() []string { return nil }))
	if !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), "WithExpectFunc") {
		t.Errorf("NewRespondent(WithExpectFunc) = %v, want ErrInvalidOption naming WithExpectFunc", err)
	}
	_, err = survey.NewSurveyor(survey.WithConcurrency(2))
	if !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), "WithConcurrency") {
		t.Errorf("NewSurveyor(WithConcurrency) = %v, want ErrInvalidOption naming WithConcurrency", err)
	}
}

// Answer headers come back in Response.Header, a failed answer's included,
// as reqrep replies carry theirs.
func TestErrorAnswerHeaders(t *testing.T) {
	addr := testutil.Inproc(t)
	s := mustSurveyor(t, survey.WithListen(addr))
	mustRespondent(t, survey.HandlerFunc(func(ctx context.Context, q *survey.Question) (any, error) {
		q.SetReplyHeader("echo", q.Header.Get("k"))
		return nil, spmesh.Errorf(7, "refused")
	}), survey.WithDial(addr), survey.WithName("r1"))
	peers(t, s, 1)
	rs, err := s.SurveyHeader(context.Background(), spmesh.Header{"k": "v"}, "x", survey.WithExpect("r1"), survey.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	got := collect(t, rs)
	var re *spmesh.RemoteError
	if len(got) != 1 || !errors.As(got[0].Err, &re) || re.Code != 7 || got[0].Header.Get("echo") != "v" {
		t.Fatalf("got %+v, want one failed answer (code 7) with header echo=v", got)
	}
}
