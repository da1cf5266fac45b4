package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pipeline"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

type job struct {
	Image string
	N     int
}

// must fails t on err, else closes s when the test ends and returns it.
func must[S io.Closer](t testing.TB, s S, err error) S {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustPusher(t testing.TB, opts ...pipeline.Option) *pipeline.Pusher {
	t.Helper()
	p, err := pipeline.NewPusher(opts...)
	return must(t, p, err)
}

func mustPuller(t testing.TB, opts ...pipeline.Option) *pipeline.Puller {
	t.Helper()
	pl, err := pipeline.NewPuller(opts...)
	return must(t, pl, err)
}

func mustProducer(t testing.TB, opts ...pipeline.Option) *pipeline.Producer {
	t.Helper()
	p, err := pipeline.NewProducer(opts...)
	return must(t, p, err)
}

func mustWorker(t testing.TB, h pipeline.Handler, opts ...pipeline.Option) *pipeline.Worker {
	t.Helper()
	w, err := pipeline.NewWorker(h, opts...)
	return must(t, w, err)
}

// listener is a socket that can listen: any of Puller, Pusher, Worker.
type listener interface {
	Listen(addr string) (string, error)
}

// listen makes l listen on addr ("tcp": a loopback port) and returns the
// bound address.
func listen(t testing.TB, l listener, addr string) string {
	t.Helper()
	if addr == "tcp" {
		addr = "tcp://127.0.0.1:0"
	}
	bound, err := l.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	return bound
}

// dialAll makes each of ls listen on its own address made from addr (see
// suffix) and returns the options that dial them all.
func dialAll[L listener](t testing.TB, addr string, ls []L) []pipeline.Option {
	t.Helper()
	var opts []pipeline.Option
	for i, l := range ls {
		opts = append(opts, pipeline.WithDial(listen(t, l, suffix(addr, i))))
	}
	return opts
}

// suffix makes the i-th address of a test from addr: inproc addresses get a
// suffix, "tcp" stays (each listener picks a port).
func suffix(addr string, i int) string {
	if addr == "tcp" {
		return addr
	}
	return fmt.Sprintf("%s-%d", addr, i)
}

// peers waits until the pusher has n pullers connected.
func peers(t testing.TB, p *pipeline.Pusher, n int) {
	t.Helper()
	waitPeers(t, "pusher", n, func() int { return p.Stats().Peers })
}

// workerPeers waits until p has n workers connected.
func workerPeers(t testing.TB, p *pipeline.Producer, n int) {
	t.Helper()
	waitPeers(t, "producer", n, func() int { return p.Stats().Peers })
}

// waitPeers waits until connected returns n; what names the socket in the
// failure.
func waitPeers(t testing.TB, what string, n int, connected func() int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := connected(); got != n {
			return fmt.Errorf("%s peers: got %d, want %d", what, got, n)
		}
		return nil
	})
}

func transports(t *testing.T, f func(t *testing.T, addr string)) {
	t.Run("inproc", func(t *testing.T) { f(t, testutil.Inproc(t)) })
	t.Run("tcp", func(t *testing.T) { f(t, "tcp") })
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// pair starts a worker running h on addr and a producer dialing it.
func pair(t *testing.T, addr string, h pipeline.Handler, popts []pipeline.Option, wopts ...pipeline.Option) (*pipeline.Producer, *pipeline.Worker) {
	t.Helper()
	w := mustWorker(t, h, wopts...)
	p := mustProducer(t, append(popts, pipeline.WithDial(listen(t, w, addr)))...)
	workerPeers(t, p, 1)
	return p, w
}
