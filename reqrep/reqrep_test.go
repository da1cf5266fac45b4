package reqrep_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/reqrep"
	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/rep"
	"go.nanomsg.org/mangos/v3/protocol/req"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	testutil.VerifyTestMain(m)
}

type resize struct {
	Image string
	Width int
}

type thumb struct {
	Image string
	Width int
	By    string
}

func mustRequester(t testing.TB, opts ...reqrep.Option) *reqrep.Requester {
	t.Helper()
	r, err := reqrep.NewRequester(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func mustReplier(t testing.TB, h reqrep.Handler, opts ...reqrep.Option) *reqrep.Replier {
	t.Helper()
	r, err := reqrep.NewReplier(h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// peers waits until rq has n connections.
func peers(t testing.TB, rq *reqrep.Requester, n int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := rq.Stats().Peers; got != n {
			return fmt.Errorf("requester peers: got %d, want %d", got, n)
		}
		return nil
	})
}

func transports(t *testing.T, f func(t *testing.T, addr string)) {
	t.Run("inproc", func(t *testing.T) { f(t, testutil.Inproc(t)) })
	t.Run("tcp", func(t *testing.T) { f(t, testutil.FreeTCP(t)) })
}

// thumbnailer answers a resize with a thumb named by, echoing header "trace"
// back and recording the ids and attempts it saw.
func thumbnailer(by string) reqrep.Handler {
	return reqrep.TypedHandler(func(ctx context.Context, req *reqrep.Request, in resize) (thumb, error) {
		if in.Width <= 0 {
			return thumb{}, spmesh.Errorf(400, "bad width %d", in.Width)
		}
		req.SetReplyHeader("trace", req.Header.Get("trace"))
		req.SetReplyHeader("id", req.ID.String())
		req.SetReplyHeader("attempt", fmt.Sprint(req.Attempt))
		return thumb{Image: in.Image, Width: in.Width, By: by}, nil
	})
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestRequestReply(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		rp := mustReplier(t, thumbnailer("a"), reqrep.WithListen(addr))
		rq := mustRequester(t, reqrep.WithDial(addr))
		peers(t, rq, 1)
		ctx := ctxT(t, 10*time.Second)
		for i := range 50 {
			var got thumb
			h, err := rq.RequestHeader(ctx, spmesh.Header{"trace": fmt.Sprint("t", i)}, resize{"cat.jpg", i + 1}, &got)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if want := (thumb{"cat.jpg", i + 1, "a"}); got != want {
				t.Fatalf("reply %d: got %+v, want %+v", i, got, want)
			}
			if h.Get("trace") != fmt.Sprint("t", i) || h.Get("attempt") != "1" || len(h.Get("id")) != 32 {
				t.Fatalf("reply header %d: got %v, want trace t%d, attempt 1, a 32-digit id", i, h, i)
			}
		}
		got, err := reqrep.Ask[thumb](ctx, rq, resize{"dog.png", 7})
		if err != nil || got != (thumb{"dog.png", 7, "a"}) {
			t.Fatalf("Ask: got %+v, %v, want dog.png 7 a", got, err)
		}
		if err := rq.Request(ctx, resize{"x", 1}, nil); err != nil {
			t.Fatalf("nil resp: got %v, want nil", err)
		}
		if rs := rq.Stats(); rs.Sent != 52 || rs.Received != 52 || rs.Resent != 0 || rs.InFlight != 0 {
			t.Fatalf("requester stats: got %+v, want 52 sent and received", rs)
		}
		// The replier counts a reply once mangos took it, which may be
		// after the requester has it.
		testutil.Eventually(t, 10*time.Second, func() error {
			if ps := rp.Stats(); ps.Received != 52 || ps.Sent != 52 || ps.InFlight != 0 {
				return fmt.Errorf("replier stats: got %+v, want 52 received and sent", ps)
			}
			return nil
		})
	})
}

func TestDo(t *testing.T) {
	addr := testutil.Inproc(t)
	mustReplier(t, thumbnailer("a"), reqrep.WithListen(addr))
	rq := mustRequester(t, reqrep.WithDial(addr))
	peers(t, rq, 1)
	ctx := ctxT(t, 10*time.Second)
	id := reqrep.ID{1, 2, 3}
	rep, err := rq.Do(ctx, &reqrep.Call{ID: id, Attempt: 3, MaxAttempts: 5, Body: resize{"a", 2}})
	if err != nil {
		t.Fatal(err)
	}
	var got thumb
	if err := rep.Decode(&got); err != nil || got.Width != 2 {
		t.Fatalf("decode: got %+v, %v, want width 2", got, err)
	}
	if rep.ID != id || rep.Attempt != 3 || rep.Header.Get("id") != id.String() || rep.Header.Get("attempt") != "3" {
		t.Fatalf("reply: got id %v attempt %d header %v, want id %v attempt 3 seen by the handler", rep.ID, rep.Attempt, rep.Header, id)
	}
	// A remote error comes back with the reply's details.
	rep, err = rq.Do(ctx, &reqrep.Call{Attempt: 2, Body: resize{"a", 0}})
	var re *spmesh.RemoteError
	if !errors.As(err, &re) || re.Code != 400 || rep == nil || rep.Attempt != 2 {
		t.Fatalf("remote error: got %v, %+v, want a RemoteError code 400 and the reply of attempt 2", err, rep)
	}
	if _, err := rq.Do(ctx, &reqrep.Call{Attempt: 4, MaxAttempts: 3}); !errors.Is(err, spmesh.ErrInvalidOption) {
		t.Fatalf("attempt above max: got %v, want ErrInvalidOption", err)
	}
	if _, err := rq.Do(ctx, nil); !errors.Is(err, spmesh.ErrInvalidOption) {
		t.Fatalf("nil call: got %v, want ErrInvalidOption", err)
	}
}

func TestRemoteErrors(t *testing.T) {
	addr := testutil.Inproc(t)
	var calls atomic.Int64
	rp := mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		calls.Add(1)
		var what string
		if err := req.Decode(&what); err != nil {
			return nil, err
		}
		switch what {
		case "panic":
			panic("boom")
		case "plain":
			return nil, errors.New("plain failure")
		case "coded":
			return nil, fmt.Errorf("wrapped: %w", spmesh.Errorf(42, "coded failure"))
		case "unencodable":
			return make(chan int), nil
		}
		return "ok", nil
	}), reqrep.WithListen(addr), reqrep.WithConcurrency(1))
	rq := mustRequester(t, reqrep.WithDial(addr))
	peers(t, rq, 1)
	ctx := ctxT(t, 10*time.Second)
	for _, tc := range []struct {
		req  string
		code int
		msg  string
	}{
		{"panic", spmesh.CodePanic, "panic: boom"},
		{"plain", 0, "plain failure"},
		{"coded", 42, "wrapped: coded failure"},
		{"unencodable", 0, "spmesh: encode reply: spmesh: encode chan int"},
	} {
		err := rq.Request(ctx, tc.req, nil)
		var re *spmesh.RemoteError
		if !errors.As(err, &re) || re.Code != tc.code || !strings.HasPrefix(re.Message, tc.msg) {
			t.Errorf("%s: got %v, want RemoteError code %d message %q", tc.req, err, tc.code, tc.msg)
		}
	}
	// The replier, with one handler goroutine, survived the panic.
	var got string
	if err := rq.Request(ctx, "fine", &got); err != nil || got != "ok" {
		t.Fatalf("after panic: got %q, %v, want ok", got, err)
	}
	if st := rp.Stats(); st.Panics != 1 || st.HandlerErrors != 4 {
		t.Fatalf("replier stats: got %+v, want 1 panic, 4 errors", st)
	}
	if st := rq.Stats(); st.RemoteErrors != 4 {
		t.Fatalf("requester stats: got %+v, want 4 remote errors", st)
	}
	// A body that does not decode as the typed handler's input.
	addr2 := testutil.Inproc(t)
	mustReplier(t, thumbnailer("a"), reqrep.WithListen(addr2))
	rq2 := mustRequester(t, reqrep.WithDial(addr2))
	peers(t, rq2, 1)
	var re *spmesh.RemoteError
	if err := rq2.Request(ctx, "not a resize", nil); !errors.As(err, &re) || !strings.Contains(re.Message, "decode") {
		t.Fatalf("undecodable request: got %v, want a RemoteError about decoding", err)
	}
	// A reply that does not decode into the caller's type.
	var n int
	if err := rq.Request(ctx, "fine", &n); !errors.Is(err, spmesh.ErrDecode) {
		t.Fatalf("undecodable reply: got %v, want ErrDecode", err)
	}
}

func TestConcurrentNoCrossTalk(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
			var n int
			err := req.Decode(&n)
			return n * 2, err
		}), reqrep.WithListen(addr))
		// WithWaitForReplier: on a loaded machine the replier may hang up
		// on this requester when its replies back up behind 100 callers
		// (Stats.SendTimeouts), and a call started before the redial
		// would fail with ErrNoPeers by design ("no replier, no wait").
		// This test is about replies reaching their own callers.
		rq := mustRequester(t, reqrep.WithDial(addr), reqrep.WithWaitForReplier())
		peers(t, rq, 1)
		ctx := ctxT(t, 60*time.Second)
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for g := range 100 {
			wg.Go(func() {
				for i := range 100 {
					n := g*1000 + i
					got, err := reqrep.Ask[int](ctx, rq, n)
					if err != nil || got != 2*n {
						errs <- fmt.Errorf("goroutine %d request %d: got %d, %v, want %d", g, i, got, err, 2*n)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if st := rq.Stats(); st.Received != 10000 || st.InFlight != 0 {
			t.Fatalf("stats: got %+v, want 10000 received, none in flight", st)
		}
	})
}

func TestLoadSpreads(t *testing.T) {
	rq := mustRequester(t)
	var counts [3]atomic.Int64
	for i := range counts {
		rp := mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
			counts[i].Add(1)
			time.Sleep(time.Millisecond) // simulated work
			return i, nil
		}), reqrep.WithListen("tcp://127.0.0.1:0"))
		if err := rq.Dial(rp.Addrs()[0]); err != nil {
			t.Fatal(err)
		}
	}
	peers(t, rq, 3)
	ctx := ctxT(t, 30*time.Second)
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			for range 20 {
				if err := rq.Request(ctx, "x", nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i := range counts {
		if n := counts[i].Load(); n < 60 {
			t.Errorf("replier %d handled %d of 600 requests, want at least 60 (load not spread)", i, n)
		}
	}
}

func TestNoPeersFast(t *testing.T) {
	rq := mustRequester(t, reqrep.WithDial(testutil.FreeTCP(t)))
	ctx := ctxT(t, 30*time.Second)
	start := time.Now()
	err := rq.Request(ctx, "anyone?", nil)
	if !errors.Is(err, spmesh.ErrNoPeers) {
		t.Fatalf("no replier: got %v, want ErrNoPeers", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("ErrNoPeers after %v, want at once", el)
	}
	none := mustRequester(t)
	if err := none.Request(ctx, "anyone?", nil); !errors.Is(err, spmesh.ErrNoPeers) {
		t.Fatalf("unwired requester: got %v, want ErrNoPeers", err)
	}
}

func TestWaitForReplier(t *testing.T) {
	addr := testutil.FreeTCP(t)
	rq := mustRequester(t, reqrep.WithDial(addr), reqrep.WithWaitForReplier(), reqrep.WithReconnect(10*time.Millisecond, 50*time.Millisecond))
	done := make(chan error, 1)
	var got thumb
	go func() { done <- rq.Request(ctxT(t, 20*time.Second), resize{"late", 3}, &got) }()
	testutil.Eventually(t, 10*time.Second, func() error {
		if rq.Stats().InFlight != 1 {
			return errors.New("request not in flight yet")
		}
		return nil
	})
	mustReplier(t, thumbnailer("late"), reqrep.WithListen(addr))
	if err := <-done; err != nil || got.By != "late" {
		t.Fatalf("got %+v, %v, want a reply from the late replier", got, err)
	}
}

func TestDeadlineTravels(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		seen := make(chan error, 1)
		var deadline atomic.Pointer[time.Time]
		mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
			d := req.Deadline
			deadline.Store(&d)
			<-ctx.Done() // blocks past the caller's deadline
			seen <- ctx.Err()
			return nil, ctx.Err()
		}), reqrep.WithListen(addr))
		rq := mustRequester(t, reqrep.WithDial(addr))
		peers(t, rq, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		want, _ := ctx.Deadline()
		if err := rq.Request(ctx, "slow", nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("request: got %v, want DeadlineExceeded", err)
		}
		select {
		case err := <-seen:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("handler ctx: got %v, want DeadlineExceeded", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("handler ctx not cancelled 10s after the caller's deadline")
		}
		if got := *deadline.Load(); !got.Equal(want) {
			t.Fatalf("handler deadline: got %v, want %v", got, want)
		}
	})
}

func TestAttemptTimeoutResends(t *testing.T) {
	addr := testutil.Inproc(t)
	var mu sync.Mutex
	var ids []reqrep.ID
	var attempts []int
	mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		mu.Lock()
		ids, attempts = append(ids, req.ID), append(attempts, req.Attempt)
		mu.Unlock()
		if req.Attempt < 3 {
			<-ctx.Done() // hung until the replier closes or the deadline
			return nil, ctx.Err()
		}
		return req.Attempt, nil
	}), reqrep.WithListen(addr))
	// WithMaxAttempts(0), the default: unbounded.
	rq := mustRequester(t, reqrep.WithDial(addr), reqrep.WithAttemptTimeout(50*time.Millisecond), reqrep.WithMaxAttempts(0))
	peers(t, rq, 1)
	got, err := reqrep.Ask[int](ctxT(t, 10*time.Second), rq, "x")
	if err != nil || got != 3 {
		t.Fatalf("got %d, %v, want the reply of attempt 3", got, err)
	}
	mu.Lock()
	if len(ids) != 3 || ids[0] != ids[1] || ids[1] != ids[2] || attempts[0] != 1 || attempts[1] != 2 || attempts[2] != 3 {
		t.Fatalf("handler saw ids %v attempts %v, want one id, attempts 1 2 3", ids, attempts)
	}
	mu.Unlock()
	if st := rq.Stats(); st.Resent != 2 || st.Timeouts != 2 || st.Sent != 3 {
		t.Fatalf("stats: got %+v, want 3 sent, 2 resent, 2 timeouts", st)
	}
	// Max attempts: every attempt hangs.
	rq2 := mustRequester(t, reqrep.WithDial(addr), reqrep.WithAttemptTimeout(20*time.Millisecond), reqrep.WithMaxAttempts(2))
	peers(t, rq2, 1)
	if err := rq2.Request(ctxT(t, 10*time.Second), "x", nil); !errors.Is(err, spmesh.ErrTimeout) {
		t.Fatalf("max attempts: got %v, want ErrTimeout", err)
	}
	if st := rq2.Stats(); st.Sent != 2 || st.Resent != 1 {
		t.Fatalf("max attempts 2: got %d sent, %d resent, want 2 attempts in all", st.Sent, st.Resent)
	}
}

func TestDrain(t *testing.T) {
	addr := testutil.Inproc(t)
	started := make(chan struct{})
	release := make(chan struct{})
	rp := mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		close(started)
		<-release
		return "done", nil
	}), reqrep.WithListen(addr))
	rq := mustRequester(t, reqrep.WithDial(addr))
	peers(t, rq, 1)
	ctx := ctxT(t, 10*time.Second)
	got := make(chan string, 1)
	go func() {
		s, err := reqrep.Ask[string](ctx, rq, "x")
		if err != nil {
			s = err.Error()
		}
		got <- s
	}()
	<-started
	drained := make(chan error, 1)
	go func() { drained <- rp.Drain(ctx) }()
	testutil.Eventually(t, 10*time.Second, func() error {
		// Drain waits for the handler in hand.
		select {
		case err := <-drained:
			return fmt.Errorf("Drain returned %v with a handler in hand", err)
		default:
		}
		if rp.Stats().InFlight != 1 {
			return errors.New("handler not in flight")
		}
		return nil
	})
	close(release)
	if err := <-drained; err != nil {
		t.Fatalf("Drain: got %v, want nil", err)
	}
	if s := <-got; s != "done" {
		t.Fatalf("request in hand: got %q, want done", s)
	}
	if err := rp.Drain(ctx); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Drain after Drain: got %v, want ErrClosed", err)
	}
}

func TestDrainContextEnds(t *testing.T) {
	addr := testutil.Inproc(t)
	started := make(chan struct{})
	rp := mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}), reqrep.WithListen(addr))
	rq := mustRequester(t, reqrep.WithDial(addr))
	peers(t, rq, 1)
	done := make(chan error, 1)
	go func() { done <- rq.Request(ctxT(t, 20*time.Second), "x", nil) }()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := rp.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain: got %v, want DeadlineExceeded", err)
	}
	// The only replier is gone: the caller learns it at once.
	if err := <-done; !errors.Is(err, spmesh.ErrNoPeers) {
		t.Fatalf("request: got %v, want ErrNoPeers", err)
	}
}

func TestReplierClose(t *testing.T) {
	rp := mustReplier(t, thumbnailer("a"), reqrep.WithListen(testutil.Inproc(t)))
	if err := rp.Close(); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}
	if err := rp.Close(); err != nil {
		t.Fatalf("second Close: got %v, want nil", err)
	}
	if err := rp.Drain(context.Background()); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Drain after Close: got %v, want ErrClosed", err)
	}
	if _, err := rp.Listen(testutil.Inproc(t)); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Listen after Close: got %v, want ErrClosed", err)
	}
	if err := rp.Dial(testutil.Inproc(t)); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Dial after Close: got %v, want ErrClosed", err)
	}
}

func TestTooLarge(t *testing.T) {
	addr := testutil.Inproc(t)
	mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		return make([]byte, 4096), nil // over the replier's limit
	}), reqrep.WithListen(addr), reqrep.WithMaxMessageSize(1024))
	rq := mustRequester(t, reqrep.WithDial(addr), reqrep.WithMaxMessageSize(1024))
	peers(t, rq, 1)
	ctx := ctxT(t, 10*time.Second)
	if err := rq.Request(ctx, make([]byte, 2048), nil); !errors.Is(err, spmesh.ErrTooLarge) {
		t.Fatalf("oversized request: got %v, want ErrTooLarge", err)
	}
	var re *spmesh.RemoteError
	if err := rq.Request(ctx, "small", nil); !errors.As(err, &re) || !strings.Contains(re.Message, "too large") {
		t.Fatalf("oversized reply: got %v, want a RemoteError saying too large", err)
	}
}

func TestOptions(t *testing.T) {
	h := thumbnailer("a")
	for name, f := range map[string]func() error{
		"concurrency on requester": func() error { _, err := reqrep.NewRequester(reqrep.WithConcurrency(2)); return err },
		"timeout on replier":       func() error { _, err := reqrep.NewReplier(h, reqrep.WithAttemptTimeout(time.Second)); return err },
		"wait on replier":          func() error { _, err := reqrep.NewReplier(h, reqrep.WithWaitForReplier()); return err },
		"nil handler":              func() error { _, err := reqrep.NewReplier(nil); return err },
		"nil option":               func() error { _, err := reqrep.NewReplier(h, nil); return err },
		"concurrency 0":            func() error { _, err := reqrep.NewReplier(h, reqrep.WithConcurrency(0)); return err },
		"credit 0":                 func() error { _, err := reqrep.NewReplier(h, reqrep.WithCredit(0)); return err },
		"credit on requester":      func() error { _, err := reqrep.NewRequester(reqrep.WithCredit(4)); return err },
		"peer credit 0":            func() error { _, err := reqrep.NewRequester(reqrep.WithPeerCredit(0)); return err },
		"peer credit on replier":   func() error { _, err := reqrep.NewReplier(h, reqrep.WithPeerCredit(4)); return err },
		"max attempts -1":          func() error { _, err := reqrep.NewRequester(reqrep.WithMaxAttempts(-1)); return err },
		"bad listen on replier":    func() error { _, err := reqrep.NewReplier(h, reqrep.WithListen("nope")); return err },
	} {
		if err := f(); !errors.Is(err, spmesh.ErrInvalidOption) {
			t.Errorf("%s: got %v, want ErrInvalidOption", name, err)
		}
	}
}

func requesterPattern() testutil.Pattern {
	return testutil.Pattern{
		Open: func(t *testing.T, addr string) io.Closer {
			return mustRequester(t, reqrep.WithListen(addr), reqrep.WithWaitForReplier())
		},
		Listens: true,
		Wait: func(ctx context.Context, s io.Closer) error {
			return s.(*reqrep.Requester).Request(ctx, "anyone?", nil)
		},
		Invalid: map[string]func() error{
			"nil codec":     func() error { _, err := reqrep.NewRequester(reqrep.WithCodec(nil)); return err },
			"bad address":   func() error { _, err := reqrep.NewRequester(reqrep.WithDial("foo://x")); return err },
			"queue zero":    func() error { _, err := reqrep.NewReplier(thumbnailer("a"), reqrep.WithQueueLen(0)); return err },
			"tiny max size": func() error { _, err := reqrep.NewRequester(reqrep.WithMaxMessageSize(1)); return err },
			"backoff": func() error {
				_, err := reqrep.NewRequester(reqrep.WithReconnect(time.Second, time.Millisecond))
				return err
			},
			"nil registry":   func() error { _, err := reqrep.NewRequester(reqrep.WithDiscovery(nil, "x")); return err },
			"timeout < 0":    func() error { _, err := reqrep.NewRequester(reqrep.WithAttemptTimeout(-time.Second)); return err },
			"side mismatch":  func() error { _, err := reqrep.NewRequester(reqrep.WithConcurrency(4)); return err },
			"nil handler":    func() error { _, err := reqrep.NewReplier(nil); return err },
			"nil TLS config": func() error { _, err := reqrep.NewRequester(reqrep.WithTLS(nil)); return err },
		},
		Hostile: hostileReplies,
	}
}

// hostileReplies answers the requester s with garbage frames from a raw
// mangos REP peer: every call fails with ErrDecode, each frame is counted,
// and a proper reply still works afterwards.
func hostileReplies(t *testing.T, s io.Closer, addr string, frames [][]byte) {
	rq := s.(*reqrep.Requester)
	raw, err := rep.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.SetOption(mangos.OptionDialAsynch, true); err != nil {
		t.Fatal(err)
	}
	if err := raw.Dial(addr); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 20*time.Second)
	answer := func(body []byte) error {
		done := make(chan error, 1)
		go func() { done <- rq.Request(ctx, "q", nil) }()
		m, err := raw.RecvMsg()
		if err != nil {
			t.Fatal(err)
		}
		m.Body = append(m.Body[:0], body...)
		if err := raw.SendMsg(m); err != nil {
			t.Fatal(err)
		}
		return <-done
	}
	for i, f := range frames {
		if err := answer(f); !errors.Is(err, spmesh.ErrDecode) {
			t.Errorf("garbage reply %d %q: got %v, want ErrDecode", i, f, err)
		}
	}
	// A reply with the wrong id (a confused peer) is refused too.
	wrong := wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindReply, ID: wire.ID{9}})
	if err := answer(wrong); !errors.Is(err, spmesh.ErrDecode) {
		t.Errorf("reply with a foreign id: got %v, want ErrDecode", err)
	}
	// A proper reply (echoing the request's envelope id) works.
	done := make(chan error, 1)
	var got string
	go func() { done <- rq.Request(ctx, "q", &got) }()
	m, err := raw.RecvMsg()
	if err != nil {
		t.Fatal(err)
	}
	var env wire.Msg
	if err := wire.Decode(m.Body, &env); err != nil || env.Kind != wire.KindRequest || env.Attempt != 1 {
		t.Fatalf("request envelope: got %+v, %v, want a request, attempt 1", env, err)
	}
	body, _ := spmesh.Msgpack.Marshal("fine")
	m.Body = append(wire.AppendHeader(m.Body[:0:0], &wire.Msg{Kind: wire.KindReply, ID: env.ID}), body...)
	if err := raw.SendMsg(m); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || got != "fine" {
		t.Fatalf("proper reply after garbage: got %q, %v, want fine", got, err)
	}
	if st := rq.Stats(); st.DecodeErrors != uint64(len(frames)+1) {
		t.Fatalf("decode errors: got %d, want %d", st.DecodeErrors, len(frames)+1)
	}
}

// TestHostileRequests sends garbage and oversized frames to a Replier from a
// raw mangos REQ peer: garbage gets error replies, oversized frames are
// refused, everything is counted, and the replier keeps serving.
func TestHostileRequests(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		const limit = 1024
		rp := mustReplier(t, thumbnailer("a"), reqrep.WithListen(addr), reqrep.WithMaxMessageSize(limit))
		raw, err := req.NewSocket()
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		for k, v := range map[string]any{
			mangos.OptionDialAsynch:       true,
			mangos.OptionRetryTime:        time.Duration(0),
			mangos.OptionReconnectTime:    10 * time.Millisecond,
			mangos.OptionMaxReconnectTime: 50 * time.Millisecond,
		} {
			if err := raw.SetOption(k, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := raw.Dial(addr); err != nil {
			t.Fatal(err)
		}
		for i, f := range testutil.Garbage() {
			if err := raw.Send(f); err != nil {
				t.Fatal(err)
			}
			b, err := raw.Recv()
			if err != nil {
				t.Fatalf("garbage %d: no reply: %v", i, err)
			}
			var env wire.Msg
			if err := wire.Decode(b, &env); err != nil || env.Kind != wire.KindReply || !strings.Contains(env.Err, "decode") {
				t.Errorf("garbage %d %q: got reply %+v, %v, want an error reply about decoding", i, f, env, err)
			}
		}
		// Oversized: over TCP mangos drops the connection; over inproc
		// (no transport limit) the replier answers ErrTooLarge.
		big := make([]byte, 2*limit)
		if err := raw.SetOption(mangos.OptionRecvDeadline, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := raw.Send(big); err != nil {
			t.Fatal(err)
		}
		b, err := raw.Recv()
		if strings.HasPrefix(addr, "inproc") {
			var env wire.Msg
			if err != nil || wire.Decode(b, &env) != nil || !strings.Contains(env.Err, "too large") {
				t.Fatalf("oversized over inproc: got %+v, %v, want an error reply saying too large", env, err)
			}
			if st := rp.Stats(); st.Dropped != 1 || st.DroppedTooLarge != 1 {
				t.Fatalf("oversized over inproc: got %d dropped (%d too large), want 1 (1)", st.Dropped, st.DroppedTooLarge)
			}
		} else if err == nil {
			t.Fatalf("oversized over TCP: got a reply %q, want the connection dropped", b)
		}
		// The replier still serves.
		rq := mustRequester(t, reqrep.WithDial(addr), reqrep.WithWaitForReplier())
		got, err := reqrep.Ask[thumb](ctxT(t, 10*time.Second), rq, resize{"ok", 1})
		if err != nil || got.Width != 1 {
			t.Fatalf("after hostile frames: got %+v, %v, want a thumb", got, err)
		}
		if st := rp.Stats(); st.DecodeErrors != uint64(len(testutil.Garbage())) || st.Received != 1 {
			t.Fatalf("replier stats: got %+v, want %d decode errors, 1 request received", st, len(testutil.Garbage()))
		}
	})
}

func TestClosedRequester(t *testing.T) {
	rq := mustRequester(t)
	rq.Close()
	if err := rq.Request(context.Background(), "x", nil); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("after Close: got %v, want ErrClosed", err)
	}
	if _, err := rq.Do(context.Background(), &reqrep.Call{}); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Do after Close: got %v, want ErrClosed", err)
	}
}

// TestExpiredOnArrival: a request whose deadline passed before it was taken
// is answered with an error and never reaches the handler.
func TestExpiredOnArrival(t *testing.T) {
	addr := testutil.Inproc(t)
	var calls atomic.Int64
	rp := mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		calls.Add(1)
		return "ok", nil
	}), reqrep.WithListen(addr))
	raw, err := req.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.Dial(addr); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		deadline time.Time
		expired  bool
	}{{time.Now().Add(-time.Second), true}, {time.Now().Add(time.Minute), false}} {
		frame := wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindRequest, ID: wire.ID{7}, Attempt: 1, Deadline: tc.deadline.UnixNano()})
		frame, _ = spmesh.AppendMarshal(spmesh.Msgpack, frame, "x")
		if err := raw.Send(frame); err != nil {
			t.Fatal(err)
		}
		b, err := raw.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var env wire.Msg
		if err := wire.Decode(b, &env); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(env.Err, "expired"); got != tc.expired || env.ID != (wire.ID{7}) {
			t.Fatalf("deadline %v: got reply %+v, want expired=%v for id 07", tc.deadline, env, tc.expired)
		}
	}
	if n, st := calls.Load(), rp.Stats(); n != 1 || st.Dropped != 1 || st.DroppedExpired != 1 {
		t.Fatalf("got %d handler calls, %d dropped (%d expired), want 1 and 1 (1)", n, st.Dropped, st.DroppedExpired)
	}
}

// TestDrainResendsQueued: a request queued at a draining replier, never
// taken, is resent when the replier closes and answered by another.
func TestDrainResendsQueued(t *testing.T) {
	addrA := testutil.Inproc(t)
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	a := mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		started <- struct{}{}
		<-release
		return "a", nil
	}), reqrep.WithListen(addrA), reqrep.WithConcurrency(1))
	rq := mustRequester(t, reqrep.WithDial(addrA))
	peers(t, rq, 1)
	ctx := ctxT(t, 20*time.Second)
	type result struct {
		by      string
		attempt int
		err     error
	}
	results := make(chan result, 2)
	call := func() {
		rep, err := rq.Do(ctx, &reqrep.Call{Body: "x"})
		if err != nil {
			results <- result{err: err}
			return
		}
		var by string
		err = rep.Decode(&by)
		results <- result{by, rep.Attempt, err}
	}
	go call()
	<-started // the first request is in hand
	go call()
	testutil.Eventually(t, 10*time.Second, func() error {
		if st := rq.Stats(); st.Sent != 2 {
			return fmt.Errorf("requests sent: got %d, want 2", st.Sent)
		}
		return nil
	})
	// The second request waits at a, whose one handler is busy. Now b joins
	// and a drains.
	addrB := testutil.Inproc(t)
	mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		return "b", nil
	}), reqrep.WithListen(addrB))
	if err := rq.Dial(addrB); err != nil {
		t.Fatal(err)
	}
	peers(t, rq, 2)
	drained := make(chan error, 1)
	go func() { drained <- a.Drain(ctx) }()
	testutil.Eventually(t, 10*time.Second, func() error {
		if !a.Stats().Draining {
			return errors.New("a not draining yet")
		}
		return nil
	})
	close(release)
	if err := <-drained; err != nil {
		t.Fatalf("Drain: got %v, want nil", err)
	}
	got := map[string]int{}
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatalf("request: %v", r.err)
		}
		got[r.by] = r.attempt
	}
	if len(got) != 2 || got["a"] != 1 || got["b"] != 2 {
		t.Fatalf("answers (replier: attempt): got %v, want a: 1 (in hand) and b: 2 (resent)", got)
	}
}
