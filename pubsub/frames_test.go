package pubsub_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pubsub"
)

// publishIndexed publishes n bodies of size bytes on topic, each starting
// with its index (8 bytes) and filled with its low byte after it.
func publishIndexed(t *testing.T, p *pubsub.Publisher, topic string, n, size int) <-chan error {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	done := make(chan error, 1)
	go func() {
		for i := range n {
			b := make([]byte, size)
			binary.BigEndian.PutUint64(b, uint64(i))
			for j := 8; j < size; j++ {
				b[j] = byte(i)
			}
			if err := p.PublishBytes(ctx, topic, nil, b); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return done
}

// Messages of batch frames past 8 KiB keep their bodies as they were sent
// while later frames arrive: a receiver keeps such a frame's buffer rather
// than copying out of it, so a buffer reused too early would show here.
func TestBatchFramesKeepData(t *testing.T) {
	const n, size = 30000, 300
	transports(t, func(t *testing.T, addr string) {
		bp := pubsub.WithBackpressure(time.Minute)
		p := mustPub(t, pubsub.WithListen(addr), pubsub.WithCodec(spmesh.Raw), bp)
		s := mustSub(t, pubsub.WithDial(addr), pubsub.WithCodec(spmesh.Raw), pubsub.WithSubscribe("keep"), bp)
		ctx := ctxT(t, time.Minute)
		if err := s.WaitPeers(ctx, 1); err != nil {
			t.Fatal(err)
		}
		done := publishIndexed(t, p, "keep", n, size)
		kept := make([]*pubsub.Message, 0, n)
		for len(kept) < n {
			m, err := s.Next(ctx)
			if err != nil {
				t.Fatalf("after %d messages: %v", len(kept), err)
			}
			kept = append(kept, m)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		for i, m := range kept {
			b := m.Data
			if len(b) != size || binary.BigEndian.Uint64(b) != uint64(i) {
				t.Fatalf("message %d: got %d bytes starting % x", i, len(b), b[:min(len(b), 8)])
			}
			for j := 8; j < size; j++ {
				if b[j] != byte(i) {
					t.Fatalf("message %d: byte %d is %#x, want %#x", i, j, b[j], byte(i))
				}
			}
		}
	})
}

// A subscriber's receive limit (WithMaxMessageSize) below the publisher's
// largest batch frame bounds the frames it is sent: a burst of small
// messages arrives whole, with nothing refused as too large. (Over SP/TCP:
// inproc enforces no receive limit.)
func TestSubscriberLimitBoundsBatchFrames(t *testing.T) {
	const n, size, limit = 20000, 256, 10 << 10
	addr := testutil.FreeTCP(t)
	bp := pubsub.WithBackpressure(time.Minute)
	p := mustPub(t, pubsub.WithListen(addr), pubsub.WithCodec(spmesh.Raw), bp)
	s := mustSub(t, pubsub.WithDial(addr), pubsub.WithCodec(spmesh.Raw), pubsub.WithSubscribe("small"),
		pubsub.WithMaxMessageSize(limit), bp)
	ctx := ctxT(t, time.Minute)
	if err := s.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	done := publishIndexed(t, p, "small", n, size)
	for i := 0; i < n; {
		c, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		m, err := s.Next(c)
		cancel()
		if err != nil {
			if st := s.Stats(); st.TooLarge != 0 || ctx.Err() != nil {
				t.Fatalf("after %d messages: %v; %d frames refused as too large", i, err, st.TooLarge)
			}
			continue
		}
		if got := binary.BigEndian.Uint64(m.Data); got != uint64(i) {
			t.Fatalf("message %d: got index %d", i, got)
		}
		i++
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.TooLarge != 0 || st.DecodeErrors != 0 || st.Dropped != 0 {
		t.Fatalf("got %d too large, %d decode errors, %d dropped; want none", st.TooLarge, st.DecodeErrors, st.Dropped)
	}
}
