package sock_test

import (
	"context"
	"errors"
	"testing"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
)

func TestWithTracerNil(t *testing.T) {
	s := sock.DefaultSettings()
	if err := sock.WithTracer(nil)(&s); !errors.Is(err, spmesh.ErrInvalidOption) {
		t.Fatalf("WithTracer(nil): got %v, want ErrInvalidOption", err)
	}
}

// Without a tracer the glue hands back what it was given, calls nothing
// and allocates nothing.
func TestTraceWithoutTracer(t *testing.T) {
	s := sock.DefaultSettings()
	ctx := context.Background()
	h := spmesh.Header{"k": "v"}
	n := testing.AllocsPerRun(100, func() {
		c, oh, end := s.TraceSend(ctx, spmesh.TracePublish, "t", h)
		end(nil)
		c2, end2 := s.TraceReceive(ctx, spmesh.TracePublish, "t", h)
		end2(nil)
		if c != ctx || c2 != ctx || len(oh) != 1 {
			t.Fatal("changed without a tracer")
		}
	})
	if n != 0 {
		t.Fatalf("%v allocs without a tracer, want 0", n)
	}
}
