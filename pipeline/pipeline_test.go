package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/pipeline"
	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/push"
)

func TestPushPull(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		pl := mustPuller(t)
		addr = listen(t, pl, addr)
		p := mustPusher(t, pipeline.WithDial(addr))
		peers(t, p, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := range 100 {
			if err := p.PushHeader(ctx, spmesh.Header{"trace": fmt.Sprint(i)}, job{"img", i}); err != nil {
				t.Fatal(err)
			}
		}
		ids := map[spmesh.ID]bool{}
		for i := range 100 {
			m, err := pl.Next(ctx)
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			j, err := spmesh.Decode[job](m)
			if err != nil {
				t.Fatal(err)
			}
			if j.N != i || m.Header.Get("trace") != fmt.Sprint(i) || ids[m.ID] || m.Time.IsZero() {
				t.Fatalf("got %+v %+v, want job %d with a fresh id", j, m, i)
			}
			ids[m.ID] = true
		}
		// The connection's sender counts a message once its write returns,
		// which may be after the puller took it.
		testutil.Eventually(t, 5*time.Second, func() error {
			if st := p.Stats(); st.Sent != 100 || st.Dropped != 0 || st.Peers != 1 {
				return fmt.Errorf("pusher stats: got %+v, want 100 sent, 0 dropped, 1 peer", st)
			}
			return nil
		})
		if st := pl.Stats(); st.Received != 100 || st.DecodeErrors != 0 {
			t.Fatalf("puller stats: got %+v, want 100 received, 0 decode errors", st)
		}
	})
}

// TestPullerDials wires the other way round: the Pusher listens.
func TestPullerDials(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		p := mustPusher(t)
		pl := mustPuller(t, pipeline.WithDial(listen(t, p, addr)))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Push waits for the puller to connect: no explicit wait needed.
		if err := p.Push(ctx, "hello"); err != nil {
			t.Fatal(err)
		}
		m, err := pl.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s, err := spmesh.Decode[string](m); err != nil || s != "hello" {
			t.Fatalf("got %q, %v, want \"hello\", nil", s, err)
		}
	})
}

func TestLoadSpread(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		const n = 3000
		pls := []*pipeline.Puller{mustPuller(t), mustPuller(t), mustPuller(t)}
		p := mustPusher(t, dialAll(t, addr, pls)...)
		peers(t, p, 3)

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		got := make([][]int, len(pls))
		var read atomic.Int64 // jobs the readers have taken
		var wg sync.WaitGroup
		for i, pl := range pls {
			wg.Go(func() {
				for m, err := range pl.All(ctx) {
					if err != nil {
						return
					}
					j, err := spmesh.Decode[job](m)
					if err != nil {
						t.Error(err)
						return
					}
					got[i] = append(got[i], j.N)
					read.Add(1)
				}
			})
		}
		for i := range n {
			if err := p.Push(ctx, job{"img", i}); err != nil {
				t.Fatal(err)
			}
		}
		// Wait for the readers, not for Stats().Received: that counts the
		// messages queued for them, which Close would drop.
		testutil.Eventually(t, 20*time.Second, func() error {
			if got := read.Load(); got != n {
				return fmt.Errorf("jobs read: got %d, want %d", got, n)
			}
			return nil
		})
		for _, pl := range pls {
			pl.Close() // ends the readers
		}
		wg.Wait()
		var all []int
		for i, g := range got {
			t.Logf("puller %d: %d jobs", i, len(g))
			if len(g) == 0 {
				t.Errorf("puller %d: got 0 jobs, want a share of %d", i, n)
			}
			all = append(all, g...)
		}
		slices.Sort(all)
		if len(all) != n {
			t.Fatalf("jobs received: got %d, want %d", len(all), n)
		}
		for i, v := range all {
			if v != i {
				t.Fatalf("job %d: got %d, want each job exactly once", i, v)
			}
		}
	})
}

func TestBackpressureNoPullers(t *testing.T) {
	p := mustPusher(t, pipeline.WithDial(testutil.FreeTCP(t)))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Push(ctx, job{"img", 1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blocking push, no puller: got %v, want context.DeadlineExceeded", err)
	}
	nb := mustPusher(t, pipeline.WithDial(testutil.FreeTCP(t)), pipeline.WithNonBlocking())
	if err := nb.Push(context.Background(), job{"img", 1}); !errors.Is(err, spmesh.ErrNoPeers) {
		t.Fatalf("non-blocking push, no puller: got %v, want ErrNoPeers", err)
	}
}

// TestBackpressureSlowPuller fills a puller that does not read: Push then
// blocks (or fails, non-blocking), and everything accepted arrives once the
// puller reads.
func TestBackpressureSlowPuller(t *testing.T) {
	for _, nonBlocking := range []bool{false, true} {
		t.Run(fmt.Sprint("nonBlocking=", nonBlocking), func(t *testing.T) {
			transports(t, func(t *testing.T, addr string) {
				pl := mustPuller(t, pipeline.WithQueueLen(4))
				addr = listen(t, pl, addr)
				opts := []pipeline.Option{pipeline.WithDial(addr), pipeline.WithQueueLen(4)}
				if nonBlocking {
					opts = append(opts, pipeline.WithNonBlocking())
				}
				p := mustPusher(t, opts...)
				peers(t, p, 1)
				payload := make([]byte, 16<<10) // fills TCP buffers quickly
				accepted := 0
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
					err := p.Push(ctx, payload)
					cancel()
					if err == nil {
						accepted++
						if accepted > 100000 {
							t.Fatal("pushed 100000 messages to a puller that does not read: got no backpressure")
						}
						continue
					}
					want := context.DeadlineExceeded
					if nonBlocking {
						want = spmesh.ErrNoPeers
					}
					if !errors.Is(err, want) {
						t.Fatalf("push to a full puller: got %v, want %v", err, want)
					}
					break
				}
				t.Logf("accepted %d messages before blocking", accepted)
				if addr[:6] == "inproc" && accepted > 64 {
					t.Errorf("inproc: got %d messages accepted before blocking, want at most 64 (queues of 4 and 16)", accepted)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				for i := range accepted {
					if _, err := pl.Next(ctx); err != nil {
						t.Fatalf("message %d of %d: %v", i, accepted, err)
					}
				}
			})
		})
	}
}

func TestPushErrors(t *testing.T) {
	p := mustPusher(t, pipeline.WithDial(testutil.Inproc(t)), pipeline.WithMaxMessageSize(1024))
	ctx := context.Background()
	if err := p.Push(ctx, make([]byte, 2048)); !errors.Is(err, spmesh.ErrTooLarge) {
		t.Errorf("oversized: got %v, want ErrTooLarge", err)
	}
	if err := p.Push(ctx, make(chan int)); err == nil {
		t.Errorf("unencodable value: got nil, want an error")
	}
	raw := mustPusher(t, pipeline.WithCodec(spmesh.Raw), pipeline.WithNonBlocking())
	if err := raw.Push(ctx, 42); err == nil || errors.Is(err, spmesh.ErrNoPeers) {
		t.Errorf("int with raw codec: got %v, want an encode error", err)
	}
	p.Close()
	if err := p.Push(ctx, 1); !errors.Is(err, spmesh.ErrClosed) {
		t.Errorf("after close: got %v, want ErrClosed", err)
	}
	if _, err := p.Listen(testutil.Inproc(t)); !errors.Is(err, spmesh.ErrClosed) {
		t.Errorf("listen after close: got %v, want ErrClosed", err)
	}
	if err := p.Dial(testutil.Inproc(t)); !errors.Is(err, spmesh.ErrClosed) {
		t.Errorf("dial after close: got %v, want ErrClosed", err)
	}
}

func TestPusherCloseDropsQueued(t *testing.T) {
	pl := mustPuller(t, pipeline.WithQueueLen(1))
	addr := listen(t, pl, testutil.Inproc(t))
	p := mustPusher(t, pipeline.WithDial(addr), pipeline.WithQueueLen(8), pipeline.WithNonBlocking())
	peers(t, p, 1)
	// Fill until a push is refused and nothing more leaves the queue: a
	// refusal alone can come while the queue is still draining into the
	// transport, and Close would then find it empty.
	pushed, lastSent := 0, ^uint64(0)
	testutil.Eventually(t, 10*time.Second, func() error {
		refusedAtOnce := true
		for p.Push(context.Background(), pushed) == nil {
			pushed++
			refusedAtOnce = false
		}
		sent := p.Stats().Sent
		stuck := refusedAtOnce && sent == lastSent
		lastSent = sent
		if !stuck {
			return fmt.Errorf("pusher still draining: %d sent of %d pushed", sent, pushed)
		}
		return nil
	})
	p.Close()
	st := p.Stats()
	if st.Dropped == 0 || st.Sent+st.Dropped != uint64(pushed) {
		t.Fatalf("got %+v after %d pushes, want some dropped and sent+dropped = %d", st, pushed, pushed)
	}
}

// queued returns a puller holding n pushed messages that nobody has taken
// yet.
func queued(t *testing.T, n int) *pipeline.Puller {
	t.Helper()
	pl := mustPuller(t)
	p := mustPusher(t, pipeline.WithDial(listen(t, pl, testutil.Inproc(t))))
	ctx := ctxT(t, 10*time.Second)
	for i := range n {
		if err := p.Push(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := pl.Stats().Received; got != uint64(n) {
			return fmt.Errorf("received: got %d, want %d", got, n)
		}
		return nil
	})
	return pl
}

func TestDrain(t *testing.T) {
	pl := queued(t, 100)
	ctx := ctxT(t, 10*time.Second)
	got := make(chan int, 1)
	go func() {
		n := 0
		for range pl.C() {
			n++
		}
		got <- n
	}()
	if err := pl.Drain(ctx); err != nil {
		t.Fatalf("Drain: got %v, want nil", err)
	}
	if n := <-got; n != 100 {
		t.Fatalf("delivered by Drain: got %d, want 100", n)
	}
	if _, err := pl.Next(ctx); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Next after Drain: got %v, want ErrClosed", err)
	}
	if err := pl.Drain(ctx); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Drain after Drain: got %v, want ErrClosed", err)
	}
}

func TestDrainDeadline(t *testing.T) {
	pl := queued(t, 10)
	dctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := pl.Drain(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain with nobody reading: got %v, want context.DeadlineExceeded", err)
	}
	if st := pl.Stats(); st.Dropped != 10 {
		t.Fatalf("dropped: got %d, want 10", st.Dropped)
	}
}

func pullerPattern() testutil.Pattern {
	return testutil.Pattern{
		Open: func(t *testing.T, addr string) io.Closer {
			return mustPuller(t, pipeline.WithListen(addr))
		},
		Listens: true,
		Wait: func(ctx context.Context, s io.Closer) error {
			_, err := s.(*pipeline.Puller).Next(ctx)
			return err
		},
		Invalid: map[string]func() error{
			"nil codec":     func() error { _, err := pipeline.NewPuller(pipeline.WithCodec(nil)); return err },
			"nil logger":    func() error { _, err := pipeline.NewPuller(pipeline.WithLogger(nil)); return err },
			"bad address":   func() error { _, err := pipeline.NewPuller(pipeline.WithListen("foo://x")); return err },
			"queue zero":    func() error { _, err := pipeline.NewPuller(pipeline.WithQueueLen(0)); return err },
			"tiny max size": func() error { _, err := pipeline.NewPuller(pipeline.WithMaxMessageSize(1)); return err },
			"backoff": func() error {
				_, err := pipeline.NewPuller(pipeline.WithReconnect(time.Second, time.Millisecond))
				return err
			},
			"nil registry":    func() error { _, err := pipeline.NewPuller(pipeline.WithDiscovery(nil, "x")); return err },
			"nil option":      func() error { _, err := pipeline.NewPuller(nil); return err },
			"pusher-only opt": func() error { _, err := pipeline.NewPuller(pipeline.WithNonBlocking()); return err },
		},
		Hostile: hostilePusher,
	}
}

// hostilePusher connects a raw mangos PUSH socket to the puller, sends it
// garbage and frames of the wrong kind, and checks that each was counted and
// that the puller still takes a good frame.
func hostilePusher(t *testing.T, s io.Closer, addr string, frames [][]byte) {
	pl := s.(*pipeline.Puller)
	raw, err := push.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.DialOptions(addr, map[string]any{mangos.OptionDialAsynch: true}); err != nil {
		t.Fatal(err)
	}
	frame := func(k wire.Kind, body string) []byte {
		return append(wire.AppendHeader(nil, &wire.Msg{Kind: k, ID: wire.ID{1}}), body...)
	}
	frames = append(frames,
		frame(wire.KindJob, "\xa1x"),
		frame(wire.KindRequest, "\xa1x"),
		append(wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindPublish, Topic: "t"}), 0xc0),
	)
	for _, f := range frames {
		if err := raw.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Send(frame(wire.KindPush, "\xa2ok")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := pl.Next(ctx)
	if err != nil {
		t.Fatalf("good frame after garbage: got %v, want a message", err)
	}
	if v, err := spmesh.Decode[string](m); err != nil || v != "ok" {
		t.Fatalf("good frame after garbage: got %q, %v, want \"ok\", nil", v, err)
	}
	// One connection, so the garbage came first and was counted already.
	if st := pl.Stats(); st.DecodeErrors != uint64(len(frames)) || st.Received != 1 {
		t.Fatalf("got %+v, want %d decode errors and 1 received", st, len(frames))
	}
	// A body that the codec rejects is the application's decode error.
	if err := raw.Send(frame(wire.KindPush, "\xc1")); err != nil {
		t.Fatal(err)
	}
	if m, err = pl.Next(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := spmesh.Decode[string](m); !errors.Is(err, spmesh.ErrDecode) {
		t.Fatalf("bad body: got %v, want ErrDecode", err)
	}
}

func pusherPattern() testutil.Pattern {
	return testutil.Pattern{
		Open: func(t *testing.T, addr string) io.Closer {
			return mustPusher(t, pipeline.WithDial(addr))
		},
		// With no puller connected, Push blocks until ctx ends.
		Wait: func(ctx context.Context, s io.Closer) error {
			return s.(*pipeline.Pusher).Push(ctx, job{"img", 1})
		},
		Invalid: map[string]func() error{
			"nil codec":     func() error { _, err := pipeline.NewPusher(pipeline.WithCodec(nil)); return err },
			"bad address":   func() error { _, err := pipeline.NewPusher(pipeline.WithDial("inproc://")); return err },
			"queue too big": func() error { _, err := pipeline.NewPusher(pipeline.WithQueueLen(1 << 21)); return err },
			"tiny max size": func() error { _, err := pipeline.NewPusher(pipeline.WithMaxMessageSize(63)); return err },
			"nil TLS":       func() error { _, err := pipeline.NewPusher(pipeline.WithTLS(nil)); return err },
			"bad service":   func() error { _, err := pipeline.NewPusher(pipeline.WithDiscovery(&registry{}, "a b")); return err },
		},
	}
}

func TestDecodeNil(t *testing.T) {
	if _, err := spmesh.Decode[int]((*pipeline.Message)(nil)); !errors.Is(err, spmesh.ErrDecode) {
		t.Fatalf("nil message: got %v, want ErrDecode", err)
	}
	if _, err := spmesh.Decode[int](&pipeline.Message{}); !errors.Is(err, spmesh.ErrDecode) {
		t.Fatalf("zero message: got %v, want ErrDecode", err)
	}
}

// TestPullerGone: when a puller goes away, pushes go to the ones left.
func TestPullerGone(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		a, b := mustPuller(t), mustPuller(t)
		p := mustPusher(t, dialAll(t, addr, []*pipeline.Puller{a, b})...)
		peers(t, p, 2)
		a.Close()
		peers(t, p, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := range 100 {
			if err := p.Push(ctx, i); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 100 {
			if _, err := b.Next(ctx); err != nil {
				t.Fatalf("job %d of 100 at the remaining puller: %v", i, err)
			}
		}
	})
}

// TestHostileOversized: a frame over the size limit costs the sender its
// connection; the puller keeps serving the (reconnected) peer.
func TestHostileOversized(t *testing.T) {
	pl := mustPuller(t, pipeline.WithMaxMessageSize(1024))
	addr := listen(t, pl, "tcp")
	raw, err := push.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetOption(mangos.OptionReconnectTime, 10*time.Millisecond)
	if err := raw.Dial(addr); err != nil {
		t.Fatal(err)
	}
	if err := raw.Send(make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	good := append(wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindPush}), 0x07)
	testutil.Eventually(t, 10*time.Second, func() error {
		if err := raw.Send(good); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		m, err := pl.Next(ctx)
		if err != nil {
			return err
		}
		if v, err := spmesh.Decode[int](m); err != nil || v != 7 {
			t.Fatalf("got %d, %v, want 7, nil", v, err)
		}
		return nil
	})
	if st := pl.Stats(); st.DecodeErrors != 0 {
		t.Fatalf("decode errors: got %d, want 0 (the oversized frame must be refused by the transport)", st.DecodeErrors)
	}
}
