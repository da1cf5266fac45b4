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

// Decode of nothing is an error wrapping ErrDecode, never a panic.
func TestZeroValueDecode(t *testing.T) {
	if _, err := pipeline.Decode[string](nil); !errors.Is(err, spmesh.ErrDecode) {
		t.Errorf("Decode[string](nil) = %v, want ErrDecode", err)
	}
	if _, err := pipeline.Decode[string](&pipeline.Message{}); !errors.Is(err, spmesh.ErrDecode) {
		t.Errorf("Decode[string](zero Message) = %v, want ErrDecode", err)
	}
	if _, err := pipeline.Decode[string](&pipeline.Job{}); !errors.Is(err, spmesh.ErrDecode) {
		t.Errorf("Decode[string](zero Job) = %v, want ErrDecode", err)
	}
}
