package survey_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spmesh/spmesh"
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
