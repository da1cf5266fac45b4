package pubsub_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pubsub"
	"go.nanomsg.org/mangos/v3"
	msub "go.nanomsg.org/mangos/v3/protocol/sub"
)

const (
	burstN    = 50_000
	burstSize = 256
	burstSubs = 3
)

// burst publishes burstN messages of burstSize bytes in a tight loop to
// burstSubs subscribers that only count, over TCP on loopback, and returns
// them once every message is accounted for (received, or counted as
// dropped on one side or the other) or the deadline passes.
func burst(t *testing.T, pubOpts, subOpts []pubsub.Option) (*pubsub.Publisher, []*pubsub.Subscriber, []*atomic.Uint64) {
	t.Helper()
	addr := testutil.FreeTCP(t)
	p := mustPub(t, append([]pubsub.Option{pubsub.WithListen(addr), pubsub.WithCodec(spmesh.Raw)}, pubOpts...)...)
	var subs []*pubsub.Subscriber
	var counts []*atomic.Uint64
	for range burstSubs {
		s := mustSub(t, append([]pubsub.Option{pubsub.WithDial(addr), pubsub.WithCodec(spmesh.Raw), pubsub.WithSubscribe("burst")}, subOpts...)...)
		n := new(atomic.Uint64)
		go func() {
			for range s.C() {
				n.Add(1)
			}
		}()
		subs, counts = append(subs, s), append(counts, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WaitPeers(ctx, burstSubs); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, burstSize)
	start := time.Now()
	for range burstN {
		if err := p.PublishBytes(ctx, "burst", nil, body); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("published %d x %d B in %v", burstN, burstSize, time.Since(start))
	return p, subs, counts
}

// accounted reports, per subscriber, received + its gaps + what the
// publisher dropped for it.
func burstReport(p *pubsub.Publisher, subs []*pubsub.Subscriber, counts []*atomic.Uint64) string {
	s := fmt.Sprintf("publisher dropped %v;", p.SubscriberDrops())
	for i, sub := range subs {
		st := sub.Stats()
		s += fmt.Sprintf(" sub %d: counted %d received %d gaps %d;", i, counts[i].Load(), st.Received, st.Publishers[p.ID()].Gaps)
	}
	return s
}

// With default options a burst of 50,000 x 256 B to 3 subscribers that
// only count arrives complete.
func TestBurstDefaultsLossless(t *testing.T) {
	p, subs, counts := burst(t, nil, nil)
	err := testutil.Until(20*time.Second, func() error {
		for i, n := range counts {
			if got := n.Load(); got != burstN {
				return fmt.Errorf("sub %d counted %d of %d", i, got, burstN)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v: %s", err, burstReport(p, subs, counts))
	}
	t.Log(burstReport(p, subs, counts))
}

// With deliberately tiny queues on both sides, every message is accounted
// for, exactly: per subscriber, what it received plus the gaps it counted
// (the publisher's drops for it, its own, and those at the very end of
// the burst, told by the tail frame) is what was published. The
// publisher's drops show in SubscriberDrops and in WithSlowSubscriber
// events, the subscribers' in WithGapHandler events.
func TestBurstTinyQueuesAccounted(t *testing.T) {
	var slow atomic.Uint64 // messages reported by WithSlowSubscriber
	var slowEvents atomic.Int64
	var gapped atomic.Uint64 // messages reported by WithGapHandler
	tiny := []pubsub.Option{pubsub.WithQueueLen(16), pubsub.WithQueueBytes(4096)}
	p, subs, counts := burst(t,
		append(tiny, pubsub.WithSlowSubscriber(func(s pubsub.SlowSubscriber) {
			slowEvents.Add(1)
			slow.Add(s.Since)
		})),
		append(tiny[:len(tiny):len(tiny)], pubsub.WithGapHandler(func(g pubsub.Gap) { gapped.Add(g.Missed) })),
	)
	err := testutil.Until(10*time.Second, func() error {
		for i, s := range subs {
			ps := s.Stats().Publishers[p.ID()]
			if got := counts[i].Load(); got != ps.Received || ps.Received+ps.Gaps != burstN {
				return fmt.Errorf("sub %d: counted %d, received %d + gaps %d != %d published", i, got, ps.Received, ps.Gaps, burstN)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v: %s", err, burstReport(p, subs, counts))
	}
	t.Log(burstReport(p, subs, counts))
	var pubDrops, gaps uint64
	for _, d := range p.SubscriberDrops() {
		pubDrops += d
	}
	for _, s := range subs {
		gaps += s.Stats().Publishers[p.ID()].Gaps
	}
	if pubDrops != p.Stats().Dropped {
		t.Fatalf("publisher: SubscriberDrops sum %d, Stats.Dropped %d", pubDrops, p.Stats().Dropped)
	}
	if pubDrops > gaps || gaps == 0 {
		t.Fatalf("publisher dropped %d, subscribers counted %d gaps: want drops, all seen as gaps", pubDrops, gaps)
	}
	if gapped.Load() != gaps {
		t.Fatalf("gap handler told of %d messages, subscribers counted %d", gapped.Load(), gaps)
	}
	if pubDrops > 0 && slowEvents.Load() == 0 {
		t.Fatalf("publisher dropped %d and no WithSlowSubscriber event", pubDrops)
	}
	t.Logf("publisher drops %d (slow-subscriber events %d reporting %d), subscriber gaps %d", pubDrops, slowEvents.Load(), slow.Load(), gaps)
}

// BenchmarkFlowModes publishes 256 B messages in a tight loop over TCP to
// one subscriber that only counts, in the default (lossy) mode and in
// lossless mode (WithBackpressure on both sides), and reports what was
// delivered per second and the share lost: the cost of lossless mode, in
// the same run.
func BenchmarkFlowModes(b *testing.B) {
	for _, mode := range []string{"default", "lossless"} {
		b.Run(mode, func(b *testing.B) {
			opts := []pubsub.Option{pubsub.WithCodec(spmesh.Raw)}
			if mode == "lossless" {
				opts = append(opts, pubsub.WithBackpressure(10*time.Second))
			}
			addr := testutil.FreeTCP(b)
			p, err := pubsub.NewPublisher(append(opts, pubsub.WithListen(addr), pubsub.WithTailInterval(5*time.Millisecond))...)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			s, err := pubsub.NewSubscriber(append(opts, pubsub.WithDial(addr), pubsub.WithSubscribe("f"))...)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var n atomic.Uint64
			go func() {
				for range s.C() {
					n.Add(1)
				}
			}()
			ctx := context.Background()
			if err := p.WaitPeers(ctx, 1); err != nil {
				b.Fatal(err)
			}
			body := make([]byte, 256)
			b.SetBytes(256)
			b.ResetTimer()
			before := cpuTime()
			for range b.N {
				if err := p.PublishBytes(ctx, "f", nil, body); err != nil {
					b.Fatal(err)
				}
			}
			err = testutil.Until(time.Minute, func() error {
				ps := s.Stats().Publishers[p.ID()]
				if ps.Received+ps.Gaps != uint64(b.N) || n.Load() != ps.Received {
					return fmt.Errorf("%d + %d of %d", ps.Received, ps.Gaps, b.N)
				}
				return nil
			})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "delivered/s")
			b.ReportMetric(100*float64(uint64(b.N)-n.Load())/float64(b.N), "%lost")
			// The process's CPU per message delivered: what the machine's
			// load changes least (the work for the dropped ones included).
			b.ReportMetric(float64(cpuTime()-before)/float64(max(n.Load(), 1)), "cpu-ns/delivered")
		})
	}
}

// BenchmarkNonMatchingSubscriber publishes 256 B messages on a topic that
// a connected subscriber does not want, and reports the process's CPU time
// per message: with no subscriber (the publisher alone), with a stock SUB
// that filters itself (what spmesh subscribers did before publisher-side
// filtering: every frame crosses the connection), and with a spmesh
// Subscriber, which announces its prefixes so that the publisher sends it
// nothing. The difference to "none" is the non-matching subscriber's cost.
func BenchmarkNonMatchingSubscriber(b *testing.B) {
	for _, mode := range []string{"none", "stock-sub", "spmesh-sub"} {
		b.Run(mode, func(b *testing.B) {
			addr := testutil.FreeTCP(b)
			p, err := pubsub.NewPublisher(pubsub.WithListen(addr), pubsub.WithCodec(spmesh.Raw), pubsub.WithTailInterval(0))
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			ctx := context.Background()
			switch mode {
			case "stock-sub":
				s, err := msub.NewSocket()
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				s.SetOption(mangos.OptionSubscribe, []byte("want.x\x00"))
				s.SetOption(mangos.OptionDialAsynch, true)
				if err := s.Dial(addr); err != nil {
					b.Fatal(err)
				}
			case "spmesh-sub":
				s, err := pubsub.NewSubscriber(pubsub.WithDial(addr), pubsub.WithSubscribe("want.x"))
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
			}
			if mode != "none" {
				if err := p.WaitPeers(ctx, 1); err != nil {
					b.Fatal(err)
				}
			}
			body := make([]byte, 256)
			before := cpuTime()
			b.ResetTimer()
			for i := range b.N {
				if err := p.PublishBytes(ctx, "other.y", nil, body); err != nil {
					b.Fatal(err)
				}
				if i%4096 == 4095 {
					runtime.Gosched()
				}
			}
			p.Close() // hands everything to the connections
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-before)/float64(b.N), "cpu-ns/msg")
			b.ReportMetric(float64(p.Stats().Dropped)/float64(b.N)*100, "%dropped")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPublishDropped measures what a message dropped for a
// subscriber that does not read costs the publishing process: Publish of
// 256 B (and 64 KiB) in a tight loop once the subscriber's queue is full,
// in CPU time per message (all goroutines: Publish, the flusher, the
// queue).
func BenchmarkPublishDropped(b *testing.B) {
	for _, size := range []int{256, 64 << 10} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			addr := testutil.FreeTCP(b)
			p, err := pubsub.NewPublisher(pubsub.WithListen(addr), pubsub.WithCodec(spmesh.Raw), pubsub.WithQueueLen(1024), pubsub.WithQueueBytes(4<<20))
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			testutil.DialSPBuffer(b, addr, testutil.ProtoSub, 4<<10) // reads nothing
			ctx := context.Background()
			if err := p.WaitPeers(ctx, 1); err != nil {
				b.Fatal(err)
			}
			body := make([]byte, size)
			for p.Stats().Dropped == 0 {
				if err := p.PublishBytes(ctx, "f", nil, body); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(size))
			b.ResetTimer()
			before, dropped := cpuTime(), p.Stats().Dropped
			for range b.N {
				if err := p.PublishBytes(ctx, "f", nil, body); err != nil {
					b.Fatal(err)
				}
			}
			p.Close() // hands everything pending to the queue (and drops it)
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-before)/float64(b.N), "cpu-ns/msg")
			b.ReportMetric(100*float64(p.Stats().Dropped-dropped)/float64(b.N), "%dropped")
		})
	}
}
