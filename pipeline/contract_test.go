package pipeline_test

import (
	"context"
	"errors"
	"testing"
	"time"

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

// Stats().Draining is false until Drain is called, then true, also once
// Drain has closed the socket.
func TestStatsDraining(t *testing.T) {
	type socket interface {
		Drain(context.Context) error
		Close() error
	}
	for _, tc := range []struct {
		name     string
		open     func() (socket, error)
		draining func(socket) bool
	}{
		{"Pusher", func() (socket, error) { return pipeline.NewPusher() }, func(s socket) bool { return s.(*pipeline.Pusher).Stats().Draining }},
		{"Puller", func() (socket, error) { return pipeline.NewPuller() }, func(s socket) bool { return s.(*pipeline.Puller).Stats().Draining }},
		{"Producer", func() (socket, error) { return pipeline.NewProducer() }, func(s socket) bool { return s.(*pipeline.Producer).Stats().Draining }},
		{"Worker", func() (socket, error) {
			return pipeline.NewWorker(pipeline.HandlerFunc(func(context.Context, *pipeline.Job) error { return nil }))
		}, func(s socket) bool { return s.(*pipeline.Worker).Stats().Draining }},
	} {
		s, err := tc.open()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.draining(s) {
			t.Errorf("%s: Draining before Drain, want false", tc.name)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.Drain(ctx); err != nil {
			t.Errorf("%s: Drain = %v, want nil (idle)", tc.name, err)
		}
		cancel()
		if !tc.draining(s) {
			t.Errorf("%s: Draining false after Drain, want true", tc.name)
		}
		s.Close()
	}
}
