package pipeline_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pipeline"
)

// registry is a minimal in-memory spmesh.Registry for tests (the discovery
// package is not needed to test the wiring).
type registry struct {
	mu       sync.Mutex
	eps      []spmesh.Endpoint
	watchers map[chan []spmesh.Endpoint]bool
}

var _ spmesh.Registry = (*registry)(nil)

func (r *registry) AdvertiseHost() string { return "127.0.0.1" }

func (r *registry) Advertise(ep spmesh.Endpoint) (func(), error) {
	r.mu.Lock()
	r.eps = append(r.eps, ep)
	r.notify()
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			for i, e := range r.eps {
				if e == ep {
					r.eps = append(r.eps[:i], r.eps[i+1:]...)
					break
				}
			}
			r.notify()
		})
	}, nil
}

// notify sends every watcher the current set; r.mu is held. The channels
// hold one update: a pending one is replaced by the newer set.
func (r *registry) notify() {
	for ch := range r.watchers {
		select {
		case <-ch:
		default:
		}
		ch <- append([]spmesh.Endpoint(nil), r.eps...)
	}
}

func (r *registry) Watch(service string, role spmesh.Role) (<-chan []spmesh.Endpoint, func(), error) {
	ch := make(chan []spmesh.Endpoint, 1)
	r.mu.Lock()
	if r.watchers == nil {
		r.watchers = map[chan []spmesh.Endpoint]bool{}
	}
	r.watchers[ch] = true
	ch <- append([]spmesh.Endpoint(nil), r.eps...)
	r.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			r.mu.Lock()
			delete(r.watchers, ch)
			close(ch)
			r.mu.Unlock()
		})
	}, nil
}

func TestDiscovery(t *testing.T) {
	reg := &registry{}
	var pls []*pipeline.Puller
	for range 2 {
		pls = append(pls, mustPuller(t, pipeline.WithDiscovery(reg, "thumbnails")))
	}
	p := mustPusher(t, pipeline.WithDiscovery(reg, "thumbnails"))
	peers(t, p, 2)
	reg.mu.Lock()
	for _, ep := range reg.eps {
		if ep.Role != spmesh.RolePuller || ep.Service != "thumbnails" {
			t.Errorf("advertised %+v, want role %q of thumbnails", ep, spmesh.RolePuller)
		}
	}
	reg.mu.Unlock()

	// A draining puller withdraws itself; the pusher hangs up on it and the
	// jobs go to the other one.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pls[0].Drain(ctx); err != nil {
		t.Fatal(err)
	}
	peers(t, p, 1)
	for i := range 10 {
		if err := p.Push(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		m, err := pls[1].Next(ctx)
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
		if v, err := spmesh.Decode[int](m); err != nil || v != i {
			t.Fatalf("got %d, %v, want %d", v, err, i)
		}
	}
	testutil.Eventually(t, time.Second, func() error {
		reg.mu.Lock()
		n := len(reg.eps)
		reg.mu.Unlock()
		if n != 1 {
			return fmt.Errorf("endpoints advertised: got %d, want 1", n)
		}
		return nil
	})
}
