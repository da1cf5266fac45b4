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

// slowDrain: a pusher with room for n messages (of at most the default
// byte bound of the queue) and a raw puller.
var slowDrain = testutil.SlowDrain{
	Proto: testutil.ProtoPull,
	Kind:  wire.KindPush,
	Open: func(t *testing.T, addr string, n int) testutil.Sender {
		return mustPusher(t, pipeline.WithListen(addr), pipeline.WithQueueLen(2*n))
	},
	Send: func(ctx context.Context, s testutil.Sender, body []byte) error {
		return s.(*pipeline.Pusher).Push(ctx, body)
	},
	Settled: true, // Close waits for the senders
}

func TestPusherDrainDeliversToSlowPuller(t *testing.T) {
	slowDrain.Delivers(t, 3000, 2<<10) // 6 MB: more than the kernel buffers hold
}

func TestPusherDrainExpires(t *testing.T) {
	slowDrain.Expires(t, 3000, 2<<10) // 6 MB, never read
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
	raw := testutil.DialSP(t, addr, testutil.ProtoPull)
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
	testutil.DrainRacesClose(t, mustPusher(t, pipeline.WithListen(testutil.Inproc(t))))
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
