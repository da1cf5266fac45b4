package pubsub_test

import (
	"context"
	"strings"
	"testing"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pubsub"
)

type cyclic struct {
	Name string
	Next *cyclic
}

// TestPublishCycleFails: a value with a pointer cycle is an error from
// Publish (batched or not), not a stack overflow that ends the process.
func TestPublishCycleFails(t *testing.T) {
	v := &cyclic{Name: "loop"}
	v.Next = v
	for _, batching := range []bool{true, false} {
		p := mustPub(t, pubsub.WithListen(testutil.Inproc(t)), pubsub.WithBatching(batching))
		err := p.Publish(context.Background(), "t", v)
		if err == nil || !strings.Contains(err.Error(), "nested deeper") {
			t.Errorf("batching %v: got %v, want an error naming the nesting", batching, err)
		}
		if err := p.Publish(context.Background(), "t", cyclic{Name: "fine"}); err != nil {
			t.Errorf("batching %v: publish after the cycle: %v", batching, err)
		}
	}
}
