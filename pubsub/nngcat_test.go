package pubsub_test

import (
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pubsub"
)

// Interop with NNG's own nngcat over TCP, in bare mode (skipped when
// nngcat is not installed).

// nngcat --sub, subscribed to a topic prefix, gets exactly topic + body
// from a bare Publisher, and nothing of the topics it did not subscribe to.
func TestNNGCatSubFromBarePublisher(t *testing.T) {
	path := testutil.NNGCat(t)
	addr := testutil.FreeTCP(t)
	p := mustPub(t, pubsub.WithListen(addr), pubsub.WithBareFrames(), pubsub.WithCodec(spmesh.Raw))
	done := testutil.StartNNGCat(t, path, 30*time.Second, "--sub", "--dial", addr, "--subscribe", "img.", "--raw", "--count", "2")
	ctx := ctxT(t, 30*time.Second)
	if err := p.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// A stock SUB filters by prefix itself: its subscription is in place
	// before it dials.
	if err := p.PublishBytes(ctx, "other.", nil, []byte("skipped")); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, "img.ready", "hello"); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishBytes(ctx, "img.", nil, []byte("world")); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.Err != nil || r.Stdout != "img.readyhelloimg.world" {
			t.Fatalf("nngcat --sub got %q (%v, stderr %q), want %q", r.Stdout, r.Err, r.Stderr, "img.readyhelloimg.world")
		}
	case <-ctx.Done():
		t.Fatal("nngcat --sub got fewer than 2 messages")
	}
	if st := p.Stats(); st.Sent != 3 || st.Dropped != 0 || st.DecodeErrors != 0 {
		t.Fatalf("got %d sent, %d dropped, %d decode errors; want 3, 0, 0", st.Sent, st.Dropped, st.DecodeErrors)
	}
}

// A bare Subscriber gets nngcat --pub's frames, split at the longest
// subscription that prefixes them. It sends NNG's PUB nothing: NNG's PUB
// closes a connection on which it receives anything, such as the interest
// frame an enveloped Subscriber sends, and then nothing is ever delivered.
func TestBareSubscriberFromNNGCatPub(t *testing.T) {
	path := testutil.NNGCat(t)
	addr := testutil.FreeTCP(t)
	s := mustSub(t, pubsub.WithListen(addr), pubsub.WithBareFrames(), pubsub.WithCodec(spmesh.Raw), pubsub.WithSubscribe("img.", "img.ready", "zzz"))
	// nngcat sends every second (its interval is whole seconds).
	testutil.StartNNGCat(t, path, 30*time.Second, "--pub", "--dial", addr, "--data", "img.readyhello", "--interval", "1")
	ctx := ctxT(t, 30*time.Second)
	for range 2 {
		m, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Topic != "img.ready" || string(m.Data) != "hello" {
			t.Fatalf("got topic %q data %q, want img.ready and hello", m.Topic, m.Data)
		}
	}
	if st := s.Stats(); st.DecodeErrors != 0 || st.Dropped != 0 {
		t.Fatalf("got %+v, want no decode errors or drops", st.Stats)
	}
}
