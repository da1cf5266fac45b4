package reqrep_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/reqrep"
)

// sizedReply answers a request for n bytes with n bytes.
var sizedReply = reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
	var n int
	if err := req.Decode(&n); err != nil {
		return nil, err
	}
	return make([]byte, n), nil
})

// rawRequest is a request envelope asking sizedReply for n bytes.
func rawRequest(t testing.TB, k wire.Kind, n int) []byte {
	t.Helper()
	var id wire.ID
	id[0] = 1
	b := wire.AppendHeader(nil, &wire.Msg{Kind: k, ID: id, Time: time.Now().UnixNano(), Attempt: 1})
	body, err := spmesh.Msgpack.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, body...)
}

// legitLatencies makes n calls and returns their latencies.
func legitLatencies(t *testing.T, rq *reqrep.Requester, n int) []time.Duration {
	t.Helper()
	ds := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		var got []byte
		if err := rq.Request(ctxT(t, 10*time.Second), 16, &got); err != nil {
			t.Fatalf("legit request: got %v, want a reply", err)
		}
		ds = append(ds, time.Since(start))
	}
	return ds
}

// A requester that never reads its replies costs a Replier at most one
// handler, for the send timeout: a legit requester is served meanwhile,
// the replies to the attacker are dropped and counted in SendTimeouts, and
// its connection is closed at the first reply dropped (so that a peer that
// was only slow resends those requests).
func TestSlowReaderIsolated(t *testing.T) {
	const sendTimeout = 5 * time.Second
	addr := testutil.FreeTCP(t)
	rp := mustReplier(t, sizedReply, reqrep.WithListen(addr), reqrep.WithConcurrency(4),
		reqrep.WithQueueLen(2), reqrep.WithSendTimeout(sendTimeout))
	rq := mustRequester(t, reqrep.WithDial(addr))
	peers(t, rq, 1)

	const calls = 200
	before := legitLatencies(t, rq, calls)

	// The attacker: 32 requests for 256 KiB replies (8 MiB, more than the
	// buffers on the way hold), and not one byte read.
	const k = 32
	base := rp.Stats().Received
	bad := testutil.DialSPBuffer(t, addr, testutil.ProtoReq, 4<<10)
	req := rawRequest(t, wire.KindRequest, 256<<10)
	for id := range uint32(k) {
		if err := bad.Send(req, 0x80000000|id); err != nil {
			t.Fatal(err)
		}
	}
	// Under attack: replies to the attacker dropped (its connection is
	// then closed, so requests of its still queued may never be handled).
	testutil.Eventually(t, 20*time.Second, func() error {
		if st := rp.Stats(); st.Received == base || st.SendTimeouts == 0 {
			return fmt.Errorf("got %d of %d attack requests handled, %d send timeouts; want some of each", st.Received-base, k, st.SendTimeouts)
		}
		return nil
	})
	during := legitLatencies(t, rq, calls)
	st := rp.Stats()
	p99b, p99d := testutil.Percentile(before, 0.99), testutil.Percentile(during, 0.99)
	t.Logf("legit p99 %v without attack, %v during (ratio %.1f); replier: %d sent, %d send timeouts, %d dropped",
		p99b, p99d, float64(p99d)/float64(p99b), st.Sent, st.SendTimeouts, st.Dropped)
	if st.SendTimeouts > st.Dropped || st.DroppedSendTimeout != st.SendTimeouts {
		t.Fatalf("got %d send timeouts, %d dropped (%d for a send timeout), want each counted as dropped too, for a send timeout",
			st.SendTimeouts, st.Dropped, st.DroppedSendTimeout)
	}
	// The attacker's connection is closed.
	testutil.Eventually(t, 3*sendTimeout, func() error {
		if le := rp.Stats().LastError; !strings.Contains(le, "took no reply") {
			return fmt.Errorf("got last error %q, want the attacker's connection closed", le)
		}
		return nil
	})
	for {
		if _, err := bad.Recv(10 * time.Second); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("attacker: got %v, want its connection closed", err)
			}
			break
		}
	}
}

// A request over the replier's limit (but within the requester's) is
// answered with CodeTooLarge: the call fails at once with ErrTooLarge after
// one attempt, the handler never sees it, and both sides count it.
func TestMismatchedLimitsRequest(t *testing.T) {
	addr := testutil.FreeTCP(t)
	var handled atomic.Int64
	rp := mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		handled.Add(1)
		return "ok", nil
	}), reqrep.WithListen(addr), reqrep.WithMaxMessageSize(1<<20))
	rq := mustRequester(t, reqrep.WithDial(addr), reqrep.WithMaxMessageSize(16<<20), reqrep.WithAttemptTimeout(5*time.Second))
	peers(t, rq, 1)

	start := time.Now()
	err := rq.Request(ctxT(t, 30*time.Second), make([]byte, 4<<20), nil)
	elapsed := time.Since(start)
	if !errors.Is(err, spmesh.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	var re *spmesh.RemoteError
	if !errors.As(err, &re) || re.Code != spmesh.CodeTooLarge {
		t.Fatalf("got %v, want a remote error with code %d", err, spmesh.CodeTooLarge)
	}
	qs, ps := rq.Stats(), rp.Stats()
	t.Logf("4 MiB request against a 1 MiB replier: %v in %v", err, elapsed)
	if qs.Sent != 1 || qs.Resent != 0 || qs.TooLarge != 1 {
		t.Fatalf("requester: got %d sent, %d resent, %d too large; want 1, 0, 1", qs.Sent, qs.Resent, qs.TooLarge)
	}
	if handled.Load() != 0 || ps.Received != 0 || ps.TooLarge != 1 || ps.DecodeErrors != 0 {
		t.Fatalf("replier: got %d handled, %d received, %d too large, %d decode errors; want 0, 0, 1, 0",
			handled.Load(), ps.Received, ps.TooLarge, ps.DecodeErrors)
	}
	// The replier still serves.
	var s string
	if err := rq.Request(ctxT(t, 10*time.Second), "small", &s); err != nil || s != "ok" {
		t.Fatalf("after: got %q, %v; want ok", s, err)
	}
}

// A reply over the requester's limit fails the call at once with
// ErrTooLarge: it is not resent (which would run the handler again).
func TestMismatchedLimitsReply(t *testing.T) {
	addr := testutil.FreeTCP(t)
	var handled atomic.Int64
	rp := mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		handled.Add(1)
		return make([]byte, 4<<20), nil
	}), reqrep.WithListen(addr), reqrep.WithMaxMessageSize(16<<20))
	rq := mustRequester(t, reqrep.WithDial(addr), reqrep.WithMaxMessageSize(1<<20), reqrep.WithAttemptTimeout(5*time.Second))
	peers(t, rq, 1)
	err := rq.Request(ctxT(t, 30*time.Second), "big please", nil)
	if !errors.Is(err, spmesh.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	qs := rq.Stats()
	if qs.Sent != 1 || qs.Resent != 0 || qs.TooLarge != 1 || handled.Load() != 1 {
		t.Fatalf("got requester %d sent, %d resent, %d too large, handler run %d times; want 1, 0, 1, 1",
			qs.Sent, qs.Resent, qs.TooLarge, handled.Load())
	}
	// The replier counts its reply once the write returned, which may be
	// after the requester has it.
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := rp.Stats().Sent; n != 1 {
			return fmt.Errorf("replier sent %d, want 1", n)
		}
		return nil
	})
}

// A request over the requester's own limit fails before it is sent, and
// is counted.
func TestRequestTooLargeLocally(t *testing.T) {
	addr := testutil.FreeTCP(t)
	mustReplier(t, sizedReply, reqrep.WithListen(addr))
	rq := mustRequester(t, reqrep.WithDial(addr), reqrep.WithMaxMessageSize(1<<20))
	peers(t, rq, 1)
	for _, body := range []any{make([]byte, 2<<20), string(make([]byte, 2<<20)), struct{ B []byte }{make([]byte, 2<<20)}} {
		if err := rq.Request(ctxT(t, 10*time.Second), body, nil); !errors.Is(err, spmesh.ErrTooLarge) {
			t.Fatalf("%T: got %v, want ErrTooLarge", body, err)
		}
	}
	if st := rq.Stats(); st.Sent != 0 || st.TooLarge != 3 {
		t.Fatalf("got %d sent, %d too large; want 0, 3", st.Sent, st.TooLarge)
	}
}

// Close returns within HandlerGrace when a handler ignores its ctx; the
// handler is counted as abandoned and goes on running.
func TestCloseWithStuckHandler(t *testing.T) {
	addr := testutil.FreeTCP(t)
	release := make(chan struct{})
	running := make(chan struct{})
	var once sync.Once
	rp, err := reqrep.NewReplier(reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		once.Do(func() { close(running) })
		<-release // ignores ctx
		return nil, nil
	}), reqrep.WithListen(addr))
	if err != nil {
		t.Fatal(err)
	}
	rq := mustRequester(t, reqrep.WithDial(addr))
	peers(t, rq, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { rq.Request(ctx, 1, nil) })
	defer func() { cancel(); wg.Wait() }()
	<-running

	start := time.Now()
	rp.Close()
	elapsed := time.Since(start)
	st := rp.Stats()
	close(release)
	t.Logf("Close with a stuck handler returned in %v (grace %v)", elapsed, reqrep.HandlerGrace)
	if elapsed > reqrep.HandlerGrace+5*time.Second {
		t.Fatalf("got Close in %v, want about %v", elapsed, reqrep.HandlerGrace)
	}
	if st.Abandoned != 1 {
		t.Fatalf("got %d abandoned, want 1", st.Abandoned)
	}
	// A second Close does not wait again.
	start = time.Now()
	rp.Close()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("second Close took %v", d)
	}
}

func TestHardeningOptionsInvalid(t *testing.T) {
	for name, f := range map[string]func() error{
		"send timeout 0":      func() error { _, err := reqrep.NewReplier(sizedReply, reqrep.WithSendTimeout(0)); return err },
		"send timeout on req": func() error { _, err := reqrep.NewRequester(reqrep.WithSendTimeout(time.Second)); return err },
	} {
		if err := f(); !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), "WithSendTimeout") {
			t.Errorf("%s: got %v, want ErrInvalidOption naming WithSendTimeout", name, err)
		}
	}
}
