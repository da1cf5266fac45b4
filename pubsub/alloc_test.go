package pubsub_test

import (
	"context"
	"testing"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pubsub"
)

// The publish path allocates at most one object per message (issue 9 target).
func TestPublishAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("alloc count")
	}
	addr := testutil.Inproc(t)
	p := mustPub(t, pubsub.WithListen(addr), pubsub.WithCodec(spmesh.Raw))
	payload := make([]byte, 256)
	ctx := context.Background()
	n := testing.AllocsPerRun(1000, func() {
		if err := p.Publish(ctx, "bench.data", payload); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("allocs per Publish (256 B, raw codec, no subscriber): %v", n)
	if n > 1 {
		t.Fatalf("got %v allocs per Publish, want <= 1", n)
	}
}

// PublishBytes does not even box the body: no allocation per message.
func TestPublishBytesAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("alloc count")
	}
	addr := testutil.Inproc(t)
	p := mustPub(t, pubsub.WithListen(addr))
	payload := make([]byte, 256)
	ctx := context.Background()
	n := testing.AllocsPerRun(1000, func() {
		if err := p.PublishBytes(ctx, "bench.data", nil, payload); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("allocs per PublishBytes (256 B, no subscriber): %v", n)
	if n >= 0.1 {
		t.Fatalf("got %v allocs per PublishBytes, want 0", n)
	}
}
