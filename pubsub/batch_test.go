package pubsub_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/pubsub"
	"go.nanomsg.org/mangos/v3"
	msub "go.nanomsg.org/mangos/v3/protocol/sub"
)

// rawKinds reads frames from a raw SUB socket dialed to addr until quiet,
// counting them by kind and the messages they carry.
type rawSub struct{ s mangos.Socket }

func newRawSub(t *testing.T, addr string) *rawSub {
	t.Helper()
	s, err := msub.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.SetOption(mangos.OptionSubscribe, []byte{})
	s.SetOption(mangos.OptionReadQLen, 1<<16)
	s.SetOption(mangos.OptionDialAsynch, true)
	if err := s.Dial(addr); err != nil {
		t.Fatal(err)
	}
	return &rawSub{s}
}

// read returns the frames' kinds and the messages in them (tail frames
// carry none), until none arrives for 200 ms.
func (r *rawSub) read(t *testing.T) (kinds map[wire.Kind]int, msgs []wire.Msg) {
	t.Helper()
	kinds = map[wire.Kind]int{}
	r.s.SetOption(mangos.OptionRecvDeadline, 200*time.Millisecond)
	for {
		b, err := r.s.Recv()
		if err != nil {
			return kinds, msgs
		}
		var env wire.Msg
		if err := wire.Decode(b, &env); err != nil {
			t.Fatalf("raw subscriber: %v", err)
		}
		kinds[env.Kind]++
		if env.Kind == wire.KindTail {
			continue // no message
		}
		if env.Kind != wire.KindBatch {
			msgs = append(msgs, env)
			continue
		}
		es := wire.NewEntries(&env)
		for {
			var m wire.Msg
			ok, err := es.Next(&m)
			if err != nil {
				t.Fatalf("raw subscriber: %v", err)
			}
			if !ok {
				break
			}
			msgs = append(msgs, m)
		}
	}
}

// connectRaw publishes probes on "probe" until the raw subscriber has one.
func connectRaw(t *testing.T, p *pubsub.Publisher, r *rawSub) {
	t.Helper()
	r.s.SetOption(mangos.OptionRecvDeadline, 20*time.Millisecond)
	testutil.Eventually(t, 10*time.Second, func() error {
		p.Publish(context.Background(), "probe", "0")
		_, err := r.s.Recv()
		return err
	})
	r.read(t)
}

// A burst goes out in batch frames; a lone message, or any message with
// batching off, in a plain frame that subscribers of earlier versions read.
func TestBatchFrames(t *testing.T) {
	for _, batching := range []bool{true, false} {
		t.Run(fmt.Sprint("batching=", batching), func(t *testing.T) {
			addr := testutil.Inproc(t)
			p := mustPub(t, pubsub.WithListen(addr), pubsub.WithBatching(batching), pubsub.WithCodec(spmesh.Raw), pubsub.WithQueueLen(1<<16))
			r := newRawSub(t, addr)
			connectRaw(t, p, r)
			ctx := context.Background()
			// A lone message: one plain frame.
			if err := p.Publish(ctx, "lone", "x"); err != nil {
				t.Fatal(err)
			}
			kinds, msgs := r.read(t)
			if kinds[wire.KindPublish] != 1 || len(msgs) != 1 || string(msgs[0].Body) != "x" {
				t.Fatalf("got kinds %v and %d messages for a lone message, want one plain frame", kinds, len(msgs))
			}
			const n = 20000
			for i := range n {
				if err := p.Publish(ctx, "burst", fmt.Sprint(i)); err != nil {
					t.Fatal(err)
				}
			}
			kinds, msgs = r.read(t)
			if len(msgs) != n {
				t.Fatalf("got %d messages, want %d", len(msgs), n)
			}
			for i, m := range msgs {
				if string(m.Body) != fmt.Sprint(i) || m.Seq != uint64(i+1) || m.Pub != p.ID() || m.Topic != "burst" {
					t.Fatalf("message %d: got %q seq %d pub %x on %q, want %q seq %d pub %x on burst", i, m.Body, m.Seq, m.Pub, m.Topic, fmt.Sprint(i), i+1, p.ID())
				}
				if i > 0 && m.ID == msgs[i-1].ID {
					t.Fatalf("message %d: id %x repeated", i, m.ID)
				}
			}
			t.Logf("%d messages in %d plain and %d batch frames", n, kinds[wire.KindPublish], kinds[wire.KindBatch])
			if batching && kinds[wire.KindBatch] == 0 {
				t.Fatalf("got no batch frame for a burst of %d, want some", n)
			}
			if !batching && kinds[wire.KindBatch] != 0 {
				t.Fatalf("got %d batch frames with batching off, want 0", kinds[wire.KindBatch])
			}
			// Large bodies (sent in frames of their own) keep their place
			// among small ones.
			var want []string
			for i := range 300 {
				body := fmt.Sprint(i)
				if i%3 == 1 {
					body += string(make([]byte, 5000+i))
				}
				want = append(want, body)
				if err := p.Publish(ctx, "mixed", []byte(body)); err != nil {
					t.Fatal(err)
				}
			}
			_, msgs = r.read(t)
			if len(msgs) != len(want) {
				t.Fatalf("got %d mixed messages, want %d", len(msgs), len(want))
			}
			for i, m := range msgs {
				if string(m.Body) != want[i] || m.Seq != uint64(i+1) {
					t.Fatalf("mixed message %d: got %d bytes seq %d, want %d bytes seq %d", i, len(m.Body), m.Seq, len(want[i]), i+1)
				}
			}
		})
	}
}

// Interleaved topics, headers and concurrent publishers: every subscriber
// sees each publisher's messages in order with per-topic sequence numbers,
// filters wildcards itself, and counts no gap when nothing is dropped.
func TestBatchesInterleaved(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		p := mustPub(t, pubsub.WithListen(addr), pubsub.WithQueueLen(1<<16))
		all := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("ev.>"), pubsub.WithQueueLen(1<<16))
		one := mustSub(t, pubsub.WithDial(addr), pubsub.WithSubscribe("ev.*.b"), pubsub.WithQueueLen(1<<16))
		connected(t, p, all, "ev.probe")
		connected(t, p, one, "ev.probe.b")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		topics := []string{"ev.x.a", "ev.x.b", "ev.y.b"}
		const n = 3000 // per topic
		for i := range n {
			for j, topic := range topics {
				var h spmesh.Header
				if i%7 == j {
					h = spmesh.Header{"i": fmt.Sprint(i)}
				}
				// Runs of one topic: two messages, then the next topic.
				for k := range 2 {
					if err := p.PublishHeader(ctx, topic, h, event{Name: topic, N: 2*i + k}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		check := func(s *pubsub.Subscriber, want map[string]bool) {
			t.Helper()
			next := map[string]int{}
			for total := 0; total < 2*n*len(want); {
				m, err := s.Next(ctx)
				if err != nil {
					t.Fatalf("after %d messages: %v", total, err)
				}
				if !want[m.Topic] {
					continue // a probe
				}
				ev, err := spmesh.Decode[event](m)
				if err != nil {
					t.Fatal(err)
				}
				k := next[m.Topic]
				if ev.N != k || ev.Name != m.Topic || m.Seq != uint64(k+1) {
					t.Fatalf("on %s: got event %d (%s) seq %d, want event %d seq %d (subscriber %+v, publisher drops %v)", m.Topic, ev.N, ev.Name, m.Seq, k, k+1, s.Stats().Stats, p.SubscriberDrops())
				}
				if wantH := (k/2)%7 == indexOf(topics, m.Topic); (m.Header.Get("i") == fmt.Sprint(k/2)) != wantH {
					t.Fatalf("on %s event %d: got header %v, want it %v", m.Topic, k, m.Header, wantH)
				}
				next[m.Topic]++
				total++
			}
			if st := s.Stats(); st.Dropped != 0 || st.DecodeErrors != 0 {
				t.Fatalf("got %+v, want no drops and no decode errors", st.Stats)
			}
		}
		check(all, map[string]bool{"ev.x.a": true, "ev.x.b": true, "ev.y.b": true})
		check(one, map[string]bool{"ev.x.b": true, "ev.y.b": true})
	})
}

func indexOf(s []string, v string) int {
	for i := range s {
		if s[i] == v {
			return i
		}
	}
	return -1
}

// Hostile batch frames are counted once each and do not stop the subscriber.
func TestHostileBatches(t *testing.T) {
	head := wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindBatch, Topic: "t", Seq: 1})
	good := wire.AppendEntry(nil, []byte{0x80, 'x'})
	frames := [][]byte{
		head, // no entries
		append(append([]byte(nil), head...), 0xa1, 'x'),                                                       // entry not a bin
		append(append([]byte(nil), head...), 0xc6, 0xff, 0xff, 0xff, 0xff, 0x80),                              // entry past the end
		append(append(append([]byte(nil), head...), good...), 0xc4, 2, 0x81, 2),                               // good entry, then a map past its entry
		append(append(append([]byte(nil), head...), good...), 0xc4, 7, 0x81, 3, 0xdf, 0xff, 0xff, 0xff, 0xff), // huge headers
	}
	transports(t, func(t *testing.T, addr string) {
		s := mustSub(t, pubsub.WithListen(addr), pubsub.WithSubscribe(">"))
		hostile(t, s, addr, frames)
		// The bad batches carry publisher id 0; the probes a real id.
		if ps, ok := s.Stats().Publishers[0]; ok {
			t.Fatalf("got %+v from the hostile batches, want no entry of a bad batch delivered", ps)
		}
	})
}
