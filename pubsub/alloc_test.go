package pubsub_test

import (
	"context"
	"testing"
	"time"

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

// nopTracer traces nothing: it measures the hook's own cost.
type nopTracer struct{}

func (nopTracer) Send(ctx context.Context, _, _ string, h spmesh.Header) (context.Context, spmesh.Header, func(error)) {
	return ctx, h, nil
}
func (nopTracer) Receive(ctx context.Context, _, _ string, _ spmesh.Header) (context.Context, func(error)) {
	return ctx, nil
}

// Without a tracer nothing travels that the caller did not set: the
// message has no headers and Message.Context is the background. The
// publish path allocates nothing more (see TestPublishBytesAllocs), nor
// with a tracer that allocates nothing itself.
func TestNoTracerAddsNothing(t *testing.T) {
	addr := testutil.Inproc(t)
	p := mustPub(t, pubsub.WithListen(addr))
	s := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("plain"))
	connected(t, p, s, "plain")
	if err := p.PublishBytes(context.Background(), "plain", nil, []byte("x")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := s.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header != nil {
		t.Errorf("headers %v without a tracer, want none", m.Header)
	}
	if m.Context() != context.Background() {
		t.Errorf("Message.Context without a tracer: %v, want the background", m.Context())
	}
	if testing.Short() {
		return
	}
	q := mustPub(t, pubsub.WithListen(testutil.Inproc(t)), pubsub.WithTracer(nopTracer{}))
	payload := make([]byte, 256)
	n := testing.AllocsPerRun(1000, func() {
		if err := q.PublishBytes(context.Background(), "bench.data", nil, payload); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("allocs per PublishBytes with a no-op tracer: %v", n)
	if n >= 0.1 {
		t.Fatalf("got %v allocs per PublishBytes with a no-op tracer, want 0", n)
	}
}
