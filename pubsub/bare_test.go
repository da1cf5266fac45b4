package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/pubsub"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Bare on both ends: subscriptions are byte prefixes, the longest that
// matches is the Topic and the rest of the frame the Data; "" gets whole
// frames; any codec works (msgpack here); nothing of the envelope is
// there (no publisher id, sequence number, time).
func TestBareBothEnds(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		p := mustPub(t, pubsub.WithListen(addr), pubsub.WithBareFrames())
		s := mustSub(t, pubsub.WithDial(addr), pubsub.WithBareFrames(), pubsub.WithSubscribe("a", "ab"))
		all := mustSub(t, pubsub.WithDial(addr), pubsub.WithBareFrames(), pubsub.WithSubscribe(""))
		ctx := ctxT(t, 20*time.Second)
		// A bare subscriber sends no interest: once connected, it gets
		// every frame.
		if err := p.WaitPeers(ctx, 2); err != nil {
			t.Fatal(err)
		}
		for _, f := range []struct{ topic, body string }{{"abc", "1"}, {"b", "skipped"}, {"a", "x"}, {"", "ab"}} {
			if err := p.PublishBytes(ctx, f.topic, nil, []byte(f.body)); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Publish(ctx, "ab.n", 42); err != nil {
			t.Fatal(err)
		}
		for _, want := range []struct{ topic, data string }{{"ab", "c1"}, {"a", "x"}, {"ab", ""}} {
			m, err := s.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m.Topic != want.topic || string(m.Data) != want.data || m.Publisher != 0 || m.Seq != 0 || !m.Time.IsZero() || m.Header != nil {
				t.Fatalf("got %+v, want topic %q data %q and no envelope fields", m, want.topic, want.data)
			}
		}
		m, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := spmesh.Decode[int](&pubsub.Message{}); err == nil {
			t.Fatalf("zero message decoded as %d", n)
		}
		if m.Topic != "ab" || string(m.Data[:2]) != ".n" {
			t.Fatalf("got topic %q data %q, want ab and .n then msgpack", m.Topic, m.Data)
		}
		// The "" subscriber gets every frame whole.
		for _, want := range []string{"abc1", "bskipped", "ax", "ab"} {
			m, err := all.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m.Topic != "" || string(m.Data) != want {
				t.Fatalf("got topic %q data %q, want \"\" and %q", m.Topic, m.Data, want)
			}
		}
		if st := s.Stats(); st.DecodeErrors != 0 || st.Dropped != 0 || len(st.Publishers) != 0 {
			t.Fatalf("got %+v, want no decode errors, drops or publishers", st)
		}
	})
}

// A bare frame carries no headers: publishing with them fails, naming
// bare frames, and nothing is sent.
func TestBareHeadersRefused(t *testing.T) {
	p := mustPub(t, pubsub.WithListen(testutil.Inproc(t)), pubsub.WithBareFrames())
	ctx := ctxT(t, 10*time.Second)
	for name, err := range map[string]error{
		"PublishHeader": p.PublishHeader(ctx, "t", spmesh.Header{"k": "v"}, "x"),
		"PublishBytes":  p.PublishBytes(ctx, "t", spmesh.Header{"k": "v"}, []byte("x")),
	} {
		if !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), "bare") {
			t.Errorf("%s with headers: got %v, want ErrInvalidOption naming bare frames", name, err)
		}
	}
	if st := p.Stats(); st.Sent != 0 {
		t.Fatalf("got %d sent, want 0", st.Sent)
	}
}

// The size limit counts the topic and the body: over it, Publish fails
// with ErrTooLarge (counted); a subscriber with a smaller limit than its
// publisher counts the frames it refused in TooLarge.
func TestBareTooLarge(t *testing.T) {
	addr := testutil.FreeTCP(t)
	p := mustPub(t, pubsub.WithListen(addr), pubsub.WithBareFrames(), pubsub.WithMaxMessageSize(4096), pubsub.WithCodec(spmesh.Raw))
	s := mustSub(t, pubsub.WithDial(addr), pubsub.WithBareFrames(), pubsub.WithMaxMessageSize(1024), pubsub.WithSubscribe("t"))
	ctx := ctxT(t, 20*time.Second)
	if err := p.PublishBytes(ctx, "t", nil, make([]byte, 4095)); err != nil {
		t.Fatalf("topic + body = limit: %v", err)
	}
	for _, v := range []any{make([]byte, 4096), string(make([]byte, 4096)), struct{}{}} {
		err := p.Publish(ctx, "t", v)
		if _, isStruct := v.(struct{}); isStruct {
			if err == nil {
				t.Fatalf("raw codec on a struct: got nil, want an encode error")
			}
			continue
		}
		if !errors.Is(err, spmesh.ErrTooLarge) {
			t.Fatalf("%T: got %v, want ErrTooLarge", v, err)
		}
	}
	if err := p.PublishBytes(ctx, "t", nil, make([]byte, 4096)); !errors.Is(err, spmesh.ErrTooLarge) {
		t.Fatalf("PublishBytes: got %v, want ErrTooLarge", err)
	}
	if st := p.Stats(); st.TooLarge != 3 || st.Sent != 1 {
		t.Fatalf("got %d too large, %d sent; want 3, 1", st.TooLarge, st.Sent)
	}
	// The subscriber refuses what passes its own limit (its connection is
	// closed and redialed) and gets what fits.
	testutil.Eventually(t, 10*time.Second, func() error {
		if err := p.PublishBytes(ctx, "t", nil, make([]byte, 2000)); err != nil {
			return err
		}
		if n := s.Stats().TooLarge; n == 0 {
			return fmt.Errorf("got %d too large on the subscriber, want > 0", n)
		}
		return nil
	})
	testutil.Eventually(t, 10*time.Second, func() error {
		if err := p.PublishBytes(ctx, "t", nil, []byte("small")); err != nil {
			return err
		}
		c, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		m, err := s.Next(c)
		if err != nil {
			return err
		}
		if string(m.Data) != "small" {
			return fmt.Errorf("got %q, want small", m.Data)
		}
		return nil
	})
}

// A bare subscriber takes a spmesh envelope as bytes: the frame of an
// enveloped publisher is delivered whole after the matching prefix (its
// terminator byte, version, kind, header and body), not decoded and not
// counted as an error.
func TestBareSubscriberTakesEnvelopeAsBytes(t *testing.T) {
	addr := testutil.Inproc(t)
	p := mustPub(t, pubsub.WithListen(addr), pubsub.WithBatching(false), pubsub.WithTailInterval(0), pubsub.WithCodec(spmesh.Raw))
	s := mustSub(t, pubsub.WithDial(addr), pubsub.WithBareFrames(), pubsub.WithSubscribe("t"))
	ctx := ctxT(t, 20*time.Second)
	var m *pubsub.Message
	testutil.Eventually(t, 10*time.Second, func() error {
		if err := p.PublishBytes(ctx, "t", nil, []byte("hello")); err != nil {
			return err
		}
		c, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		var err error
		m, err = s.Next(c)
		return err
	})
	if m.Topic != "t" || len(m.Data) == 0 || m.Data[0] != 0 {
		t.Fatalf("got topic %q data % x, want t then the envelope (a 0 byte first)", m.Topic, m.Data)
	}
	var env wire.Msg
	if err := wire.Decode(append([]byte("t"), m.Data...), &env); err != nil || string(env.Body) != "hello" || env.Pub != p.ID() {
		t.Fatalf("the data is not the publisher's envelope: %+v, %v", env, err)
	}
	if st := s.Stats(); st.DecodeErrors != 0 {
		t.Fatalf("got %d decode errors, want 0", st.DecodeErrors)
	}
}

// Lossless mode holds in bare mode: with backpressure on both sides and
// small queues, a slow bare subscriber gets every message, in order.
func TestBareBackpressureLosesNothing(t *testing.T) {
	addr := testutil.FreeTCP(t)
	small := []pubsub.Option{pubsub.WithBareFrames(), pubsub.WithBackpressure(10 * time.Second), pubsub.WithQueueLen(64), pubsub.WithQueueBytes(64 << 10), pubsub.WithCodec(spmesh.Raw)}
	p := mustPub(t, append([]pubsub.Option{pubsub.WithListen(addr)}, small...)...)
	s := mustSub(t, append([]pubsub.Option{pubsub.WithDial(addr), pubsub.WithSubscribe("bp.")}, small...)...)
	ctx := ctxT(t, 60*time.Second)
	if err := p.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	const n = 5000
	body := make([]byte, 1024)
	done := make(chan error, 1)
	go func() {
		for i := range n {
			m, err := s.Next(ctx)
			if err != nil {
				done <- err
				return
			}
			if want := fmt.Sprintf("%d", i); m.Topic != "bp." || string(m.Data[:len(want)]) != want {
				done <- fmt.Errorf("message %d: got topic %q data %q", i, m.Topic, m.Data[:min(len(m.Data), 8)])
				return
			}
			if i%64 == 0 {
				time.Sleep(time.Millisecond) // a slow consumer, not synchronisation
			}
		}
		done <- nil
	}()
	for i := range n {
		b := append([]byte(fmt.Sprintf("%d", i)), body...)
		if err := p.PublishBytes(ctx, "bp.", nil, b); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ss, ps := s.Stats(), p.Stats(); ss.Dropped != 0 || ps.Dropped != 0 {
		t.Fatalf("got %d dropped by the subscriber, %d by the publisher: want none", ss.Dropped, ps.Dropped)
	}
}

// A bare subscriber whose application takes nothing keeps its newest
// messages within its queue bound: what it dropped is counted (Dropped)
// and reported as Local gaps, since bare frames have no sequence numbers.
func TestBareSubscriberQueueDrops(t *testing.T) {
	addr := testutil.Inproc(t)
	p := mustPub(t, pubsub.WithListen(addr), pubsub.WithBareFrames())
	gaps := make(chan pubsub.Gap, 1024)
	s := mustSub(t, pubsub.WithDial(addr), pubsub.WithBareFrames(), pubsub.WithSubscribe("q"), pubsub.WithQueueLen(4),
		pubsub.WithGapHandler(func(g pubsub.Gap) { gaps <- g }))
	ctx := ctxT(t, 20*time.Second)
	if err := p.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		if err := p.PublishBytes(ctx, "q", nil, fmt.Appendf(nil, "%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if st := s.Stats(); st.Received+st.Dropped != n || st.DroppedQueueFull != st.Dropped {
			return fmt.Errorf("got %d received + %d dropped (%d queue full), want %d (all queue full)", st.Received, st.Dropped, st.DroppedQueueFull, n)
		}
		return nil
	})
	m, err := s.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) == "000" {
		t.Fatalf("got the oldest message %q first, want it dropped", m.Data)
	}
	// The gap handler runs on its own goroutine: wait for its reports.
	var local uint64
	testutil.Eventually(t, 10*time.Second, func() error {
		for len(gaps) > 0 {
			g := <-gaps
			if !g.Local || g.Publisher != 0 {
				t.Fatalf("got gap %+v, want Local from publisher 0", g)
			}
			local += g.Missed
		}
		if st := s.Stats(); local == 0 || local > st.Dropped {
			return fmt.Errorf("got %d local gaps reported, %d dropped: want some, at most the drops", local, st.Dropped)
		}
		return nil
	})
}

// A bare Subscriber keeps the contract of every socket (close, ctx,
// options). The hostile-peer part does not apply: to a bare subscriber
// every frame is a message.
func bareSubscriberPattern() testutil.Pattern {
	return testutil.Pattern{
		Open: func(t *testing.T, addr string) io.Closer {
			return mustSub(t, pubsub.WithListen(addr), pubsub.WithBareFrames(), pubsub.WithSubscribe(""))
		},
		Listens: true,
		Wait: func(ctx context.Context, s io.Closer) error {
			_, err := s.(*pubsub.Subscriber).Next(ctx)
			return err
		},
		Invalid: map[string]func() error{
			"queue zero": func() error {
				_, err := pubsub.NewSubscriber(pubsub.WithBareFrames(), pubsub.WithQueueLen(0))
				return err
			},
			"tiny max size": func() error {
				_, err := pubsub.NewPublisher(pubsub.WithBareFrames(), pubsub.WithMaxMessageSize(1))
				return err
			},
			"wrong side": func() error {
				_, err := pubsub.NewPublisher(pubsub.WithBareFrames(), pubsub.WithSubscribe("a"))
				return err
			},
		},
	}
}

// A bare PublishBytes allocates nothing per message: the frame comes from
// mangos' pool.
func TestBarePublishBytesAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("alloc count")
	}
	p := mustPub(t, pubsub.WithListen(testutil.Inproc(t)), pubsub.WithBareFrames())
	payload := make([]byte, 256)
	ctx := context.Background()
	n := testing.AllocsPerRun(1000, func() {
		if err := p.PublishBytes(ctx, "bench.data", nil, payload); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("allocs per bare PublishBytes (256 B, no subscriber): %v", n)
	if n >= 0.1 {
		t.Fatalf("got %v allocs per bare PublishBytes, want 0", n)
	}
}
