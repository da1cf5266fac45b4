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

// Zero values and nil pointers decode to an error wrapping ErrDecode,
// through the method and through spmesh.Decode, never a panic.
func TestZeroValueDecode(t *testing.T) {
	for name, d := range map[string]spmesh.Decoder{
		"zero Message": &pipeline.Message{}, "nil Message": (*pipeline.Message)(nil),
		"zero Job": &pipeline.Job{}, "nil Job": (*pipeline.Job)(nil),
		"zero DeadLetter": &pipeline.DeadLetter{}, "nil DeadLetter": (*pipeline.DeadLetter)(nil),
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
