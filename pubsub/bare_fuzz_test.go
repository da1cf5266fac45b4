package pubsub_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pubsub"
	mpub "go.nanomsg.org/mangos/v3/protocol/pub"
)

// FuzzBareSubscriber feeds a bare Subscriber (subscribed to "", "a" and
// "ab"), over a real mangos socket, arbitrary frames: each must be
// delivered once, in order, whole (Topic + Data is the frame), with Topic
// the longest subscription that prefixes it, and decode into any without
// panicking.
func FuzzBareSubscriber(f *testing.F) {
	addr := testutil.Inproc(f)
	s, err := pubsub.NewSubscriber(pubsub.WithListen(addr), pubsub.WithBareFrames(), pubsub.WithSubscribe("", "a", "ab"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	raw, err := mpub.NewSocket()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { raw.Close() })
	if err := raw.Dial(addr); err != nil {
		f.Fatal(err)
	}
	testutil.Eventually(f, 10*time.Second, func() error {
		if err := raw.Send([]byte("probe")); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := s.Next(ctx)
		return err
	})
	for { // drain the probes still in flight
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := s.Next(ctx)
		cancel()
		if err != nil {
			break
		}
	}
	for _, seed := range [][]byte{nil, []byte("a"), []byte("abc"), []byte("b\x00\x01"), {0x81, 0xa1, 'A', 0xdf, 0xff, 0xff, 0xff, 0xff}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if err := raw.Send(frame); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("frame %x not delivered: %v", frame, err)
		}
		want := ""
		switch {
		case bytes.HasPrefix(frame, []byte("ab")):
			want = "ab"
		case bytes.HasPrefix(frame, []byte("a")):
			want = "a"
		}
		if m.Topic != want || m.Topic+string(m.Data) != string(frame) {
			t.Fatalf("frame %x: got topic %q data %x, want topic %q and the frame whole", frame, m.Topic, m.Data, want)
		}
		_ = decodeAll(m)
		var v any
		_ = spmesh.Raw.Unmarshal(m.Data, &v)
	})
}
