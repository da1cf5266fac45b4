package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/pipeline"
)

const protoPull = 5<<4 + 1 // SP PULL, for a raw puller

// fillSlowPuller opens a pusher with room for n messages, connects a raw
// puller that reads nothing yet (a 4 KiB receive buffer: what it leaves
// unread backs up into the pusher's queue) and pushes n messages of size
// bytes (within the default byte bound of the queue).
func fillSlowPuller(t *testing.T, n, size int) (*pipeline.Pusher, *testutil.RawSP) {
	t.Helper()
	addr := testutil.FreeTCP(t)
	p := mustPusher(t, pipeline.WithListen(addr), pipeline.WithQueueLen(2*n))
	raw := testutil.DialSPBuffer(t, addr, protoPull, 4<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, size)
	for i := range n {
		if err := p.Push(ctx, body); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	return p, raw
}

func TestPusherDrainDeliversToSlowPuller(t *testing.T) {
	const n, size = 3000, 2 << 10 // 6 MB: more than the kernel buffers hold
	p, raw := fillSlowPuller(t, n, size)
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		drained <- p.Drain(ctx)
	}()
	for got := 0; got < n; got++ {
		b, err := raw.Recv(10 * time.Second)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v (%+v)", got, n, err, p.Stats())
		}
		var env wire.Msg
		if err := wire.Decode(b, &env); err != nil || env.Kind != wire.KindPush {
			t.Fatalf("frame %d: kind %d, %v", got, env.Kind, err)
		}
	}
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("Drain = %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Drain still running 30s after the puller read everything")
	}
	if st := p.Stats(); st.Dropped != 0 || st.Sent != n {
		t.Fatalf("Stats: Sent %d Dropped %d, want %d and 0", st.Sent, st.Dropped, n)
	}
	if err := p.Push(context.Background(), 1); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Push after Drain = %v, want ErrClosed", err)
	}
	if err := p.Drain(context.Background()); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("second Drain = %v, want ErrClosed", err)
	}
}

func TestPusherDrainExpires(t *testing.T) {
	const n, size = 3000, 2 << 10 // 6 MB, never read
	p, _ := fillSlowPuller(t, n, size)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain = %v, want DeadlineExceeded", err)
	}
	if err := p.Push(context.Background(), 1); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Push after Drain = %v, want ErrClosed", err)
	}
	// Close waited for the senders: the queued messages are counted.
	if st := p.Stats(); st.Dropped == 0 || st.DroppedClosed != st.Dropped || st.Sent+st.Dropped != n {
		t.Fatalf("Stats after expired Drain: %+v, want the unsent of %d counted as dropped (closed)", st, n)
	}
}

// A Push waiting for a puller when Drain starts goes on and completes once
// one connects; pushes after Drain started are refused.
func TestPusherDrainLetsRunningPushFinish(t *testing.T) {
	addr := testutil.FreeTCP(t)
	p := mustPusher(t, pipeline.WithListen(addr))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pushed := make(chan error, 1)
	waiting := &doneWatch{Context: ctx, called: make(chan struct{})}
	go func() { pushed <- p.Push(waiting, "first") }()
	<-waiting.called // the Push waits for a puller
	drained := make(chan error, 1)
	go func() { drained <- p.Drain(ctx) }()
	testutil.Eventually(t, 10*time.Second, func() error {
		c, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		if err := p.Push(c, "late"); !errors.Is(err, spmesh.ErrClosed) {
			return fmt.Errorf("Push during Drain = %v, want ErrClosed", err)
		}
		return nil
	})
	// A raw puller: its handshake is done when DialSP returns, so what the
	// pusher writes before closing is in its socket, whenever it reads.
	// (A Puller that is still attaching its side of the connection when
	// the pusher closes loses it: at most once.)
	raw := testutil.DialSP(t, addr, protoPull)
	if err := <-pushed; err != nil {
		t.Fatalf("running Push = %v, want nil", err)
	}
	b, err := raw.Recv(10 * time.Second)
	if err != nil {
		t.Fatalf("raw puller: %v; pusher %+v", err, p.Stats())
	}
	var env wire.Msg
	if err := wire.Decode(b, &env); err != nil || env.Kind != wire.KindPush {
		t.Fatalf("frame: kind %d, %v", env.Kind, err)
	}
	var s string
	if err := spmesh.Msgpack.Unmarshal(env.Body, &s); err != nil || s != "first" {
		t.Fatalf("got %q, %v; want the running Push's message", s, err)
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain = %v, want nil", err)
	}
}

// doneWatch is a context that tells when Done is first called: a Push
// calls it only once it waits.
type doneWatch struct {
	context.Context
	once   sync.Once
	called chan struct{}
}

func (c *doneWatch) Done() <-chan struct{} {
	c.once.Do(func() { close(c.called) })
	return c.Context.Done()
}

func TestPusherDrainWithClose(t *testing.T) {
	p := mustPusher(t, pipeline.WithListen(testutil.Inproc(t)))
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = p.Drain(context.Background()) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); errs[2] = p.Close() }()
	wg.Wait()
	// Whichever closes first wins; the others find it closed.
	for i, err := range errs {
		if err != nil && !errors.Is(err, spmesh.ErrClosed) {
			t.Fatalf("call %d = %v, want nil or ErrClosed", i, err)
		}
	}
}

func TestAddrsPipeline(t *testing.T) {
	for name, open := range map[string]func(addr string) interface{ Addrs() []string }{
		"Pusher":   func(a string) interface{ Addrs() []string } { return mustPusher(t, pipeline.WithListen(a)) },
		"Puller":   func(a string) interface{ Addrs() []string } { return mustPuller(t, pipeline.WithListen(a)) },
		"Producer": func(a string) interface{ Addrs() []string } { return mustProducer(t, pipeline.WithListen(a)) },
	} {
		addr := testutil.FreeTCP(t)
		if got := open(addr).Addrs(); len(got) != 1 || got[0] != addr {
			t.Errorf("%s.Addrs = %v, want [%s]", name, got, addr)
		}
	}
}
