package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pubsub"
	"go.nanomsg.org/mangos/v3"
	mpub "go.nanomsg.org/mangos/v3/protocol/pub"
)

func TestOneToMany(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		p := mustPub(t, pubsub.WithListen(addr))
		var subs []*pubsub.Subscriber
		for range 3 {
			s := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("jobs.>"))
			connected(t, p, s, "jobs.probe")
			subs = append(subs, s)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := range 50 {
			if err := p.Publish(ctx, "jobs.new", i); err != nil {
				t.Fatal(err)
			}
		}
		for si, s := range subs {
			for i := range 50 {
				m, err := nextNonProbe(ctx, s)
				if err != nil {
					t.Fatalf("sub %d msg %d: %v", si, i, err)
				}
				if n, _ := spmesh.Decode[int](m); n != i || m.Topic != "jobs.new" {
					t.Fatalf("sub %d: got %d on %q, want %d on jobs.new", si, n, m.Topic, i)
				}
			}
		}
	})
}

func TestManyToOne(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		s := mustSub(t, pubsub.WithListen(addr), pubsub.WithSubscribe("metrics.*"))
		var pubs []*pubsub.Publisher
		for range 3 {
			p := mustPub(t, pubsub.WithDial(addr))
			connected(t, p, s, "metrics.probe")
			pubs = append(pubs, p)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		for _, p := range pubs {
			wg.Go(func() {
				for i := range 100 {
					if err := p.Publish(ctx, "metrics.cpu", i); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		next := map[uint64]int{}
		for range 300 {
			m, err := nextNonProbe(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := spmesh.Decode[int](m)
			if n != next[m.Publisher] {
				t.Fatalf("publisher %x: got %d, want %d (per-publisher order)", m.Publisher, n, next[m.Publisher])
			}
			next[m.Publisher]++
		}
		if len(next) != 3 {
			t.Fatalf("got messages from %d publishers, want 3", len(next))
		}
	})
}

// nextNonProbe skips the probes that connected() sent to other subscribers.
func nextNonProbe(ctx context.Context, s *pubsub.Subscriber) (*pubsub.Message, error) {
	for {
		m, err := s.Next(ctx)
		if err != nil || m.Topic[len(m.Topic)-5:] != "probe" {
			return m, err
		}
	}
}

func TestSubscribeUnsubscribe(t *testing.T) {
	addr := testutil.Inproc(t)
	p := mustPub(t, pubsub.WithListen(addr))
	s := mustSub(t, pubsub.WithDial(addr))
	if err := s.Subscribe("a.*", "b.x", "a.*"); err != nil {
		t.Fatal(err)
	}
	connected(t, p, s, "b.x")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, topic := range []string{"a.1", "a.1.2", "b.y", "b.x"} {
		p.Publish(ctx, topic, topic)
	}
	for _, want := range []string{"a.1", "b.x"} {
		m, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Topic != want {
			t.Fatalf("got topic %q, want %q", m.Topic, want)
		}
	}
	if err := s.Unsubscribe("a.*"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unsubscribe("a.*"); !errors.Is(err, spmesh.ErrInvalidTopic) {
		t.Fatalf("second unsubscribe: got %v, want ErrInvalidTopic", err)
	}
	// Same publisher, same pipe: if a.2 were delivered it would come first.
	p.Publish(ctx, "a.2", "x")
	p.Publish(ctx, "b.x", "y")
	m, err := s.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Topic != "b.x" {
		t.Fatalf("after unsubscribe: got topic %q, want b.x", m.Topic)
	}
}

func TestReconnectAfterPublisherRestart(t *testing.T) {
	addr := testutil.FreeTCP(t)
	fast := pubsub.WithReconnect(10*time.Millisecond, 100*time.Millisecond)
	p := mustPub(t, pubsub.WithListen(addr))
	s := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("x"), fast)
	connected(t, p, s, "x")
	p.Close()
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := s.Stats().Peers; n != 0 {
			return fmt.Errorf("got %d peers, want 0", n)
		}
		return nil
	})
	var p2 *pubsub.Publisher
	testutil.Eventually(t, 10*time.Second, func() (err error) {
		p2, err = pubsub.NewPublisher(pubsub.WithListen(addr))
		return err
	})
	t.Cleanup(func() { p2.Close() })
	connected(t, p2, s, "x")
}

func TestSlowSubscriberDropsVisibly(t *testing.T) {
	addr := testutil.Inproc(t)
	// No shed wait: the publisher's queue drops at once, so that some
	// losses are holes (DroppedGap); with one, an inproc subscriber's
	// reader may drain it each time and every loss is at its own queue.
	p := mustPub(t, pubsub.WithListen(addr), pubsub.WithQueueLen(16), pubsub.WithShedWait(0))
	s := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("t"), pubsub.WithQueueLen(16))
	connected(t, p, s, "t")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 20000
	for i := range n {
		// A slow subscriber never blocks the publisher: all n return.
		if err := p.Publish(ctx, "t", i); err != nil {
			t.Fatal(err)
		}
	}
	// Read until the subscriber holds nothing more, then publish markers
	// until one arrives: every loss before it is now a visible gap.
	var first, last uint64
	read := func(m *pubsub.Message) {
		if first == 0 {
			first = m.Seq
		}
		last = m.Seq
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		p.Publish(ctx, "t", "marker")
		for {
			c, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			m, err := s.Next(c)
			cancel()
			if err != nil {
				break
			}
			read(m)
			if v, _ := spmesh.Decode[string](m); v == "marker" {
				return nil
			}
		}
		return errors.New("marker not received yet")
	})
	ps := s.Stats().Publishers[p.ID()]
	if ps.Gaps == 0 {
		t.Fatalf("got 0 gaps after %d messages into a queue of 16, want drops counted", n)
	}
	st := s.Stats()
	// Gaps are the holes (DroppedGap) and what the subscriber's own queue
	// dropped (DroppedQueueFull).
	if st.Dropped != ps.Gaps || st.DroppedGap+st.DroppedQueueFull != ps.Gaps || st.DroppedGap == 0 {
		t.Fatalf("got Stats.Dropped %d (DroppedGap %d, DroppedQueueFull %d), want the gap sum %d, some holes",
			st.Dropped, st.DroppedGap, st.DroppedQueueFull, ps.Gaps)
	}
	t.Logf("published %d, gaps %d, last seq %d", n, ps.Gaps, last)
}

func TestDrainDeliversQueued(t *testing.T) {
	addr := testutil.Inproc(t)
	p := mustPub(t, pubsub.WithListen(addr))
	s := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("d"))
	connected(t, p, s, "d")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	base := s.Stats().Received
	for i := range 50 {
		p.Publish(ctx, "d", i)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := s.Stats().Received - base; got != 50 {
			return fmt.Errorf("got %d received, want 50", got)
		}
		return nil
	})
	got := make(chan int, 1)
	go func() {
		n := 0
		for _, err := range s.All(ctx) {
			if err != nil {
				break
			}
			n++
		}
		got <- n
	}()
	if err := s.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != 50 {
		t.Fatalf("got %d messages through Drain, want 50", n)
	}
	if _, err := s.Next(ctx); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Next after Drain: got %v, want ErrClosed", err)
	}
}

func TestChannel(t *testing.T) {
	addr := testutil.Inproc(t)
	p := mustPub(t, pubsub.WithListen(addr))
	s := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("c"))
	connected(t, p, s, "c")
	p.Publish(context.Background(), "c", "hello")
	select {
	case m := <-s.C():
		if v, _ := spmesh.Decode[string](m); v != "hello" {
			t.Fatalf("got %q, want hello", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no message on C within 10s")
	}
	s.Close()
	testutil.Eventually(t, 5*time.Second, func() error {
		select {
		case _, ok := <-s.C():
			if !ok {
				return nil
			}
		default:
		}
		return errors.New("channel not closed after Close")
	})
}

// hostile feeds frames to a subscriber from a raw mangos publisher, then
// checks that it counted them and still receives real messages.
func hostile(t *testing.T, c io.Closer, addr string, frames [][]byte) {
	s := c.(*pubsub.Subscriber)
	raw, err := mpub.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var attached atomic.Bool
	raw.SetPipeEventHook(func(ev mangos.PipeEvent, _ mangos.Pipe) {
		if ev == mangos.PipeEventAttached {
			attached.Store(true)
		}
	})
	raw.SetOption(mangos.OptionDialAsynch, true)
	if err := raw.Dial(addr); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if s.Stats().Peers == 0 || !attached.Load() {
			return errors.New("raw peer not connected on both sides")
		}
		return nil
	})
	for _, f := range frames {
		raw.Send(f)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := s.Stats().DecodeErrors; got != uint64(len(frames)) {
			return fmt.Errorf("got %d decode errors, want %d", got, len(frames))
		}
		return nil
	})
	// An oversized frame: TCP drops the connection, inproc (no size limit on
	// the wire) counts it as garbage. Memory stays bounded either way.
	raw.Send(make([]byte, 9<<20))
	// A real publisher still gets through.
	p := mustPub(t, pubsub.WithDial(addr))
	connected(t, p, s, "after.garbage")
	if s.Stats().Received == 0 {
		t.Fatal("got 0 received after garbage, want the probe")
	}
}
