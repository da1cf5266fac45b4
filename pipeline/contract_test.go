package pipeline_test

import (
	"errors"
	"testing"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/pipeline"
)

// Nil handlers are refused at construction.
func TestNilHandlerRefused(t *testing.T) {
	for name, h := range map[string]pipeline.Handler{
		"nil":               nil,
		"HandlerFunc(nil)":  pipeline.HandlerFunc(nil),
		"TypedHandler(nil)": pipeline.TypedHandler[string](nil),
	} {
		w, err := pipeline.NewWorker(h)
		if !errors.Is(err, spmesh.ErrInvalidOption) {
			t.Errorf("NewWorker(%s) = %v, want ErrInvalidOption", name, err)
		}
		if w != nil {
			w.Close()
		}
	}
}
