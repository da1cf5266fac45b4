package reqrep_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/reqrep"
)

// registry is a hand-driven spmesh.Registry for tests.
type registry struct {
	mu       sync.Mutex
	eps      map[int]spmesh.Endpoint
	next     int
	watchers map[chan []spmesh.Endpoint]watch
}

type watch struct {
	service string
	role    spmesh.Role
}

func newRegistry() *registry {
	return &registry{eps: map[int]spmesh.Endpoint{}, watchers: map[chan []spmesh.Endpoint]watch{}}
}

func (r *registry) AdvertiseHost() string { return "127.0.0.1" }

func (r *registry) Advertise(ep spmesh.Endpoint) (func(), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	k := r.next
	r.eps[k] = ep
	r.notify()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			delete(r.eps, k)
			r.notify()
		})
	}, nil
}

func (r *registry) Watch(service string, role spmesh.Role) (<-chan []spmesh.Endpoint, func(), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan []spmesh.Endpoint, 64)
	r.watchers[ch] = watch{service, role}
	ch <- r.matching(service, role)
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			delete(r.watchers, ch)
			close(ch)
		})
	}, nil
}

func (r *registry) matching(service string, role spmesh.Role) []spmesh.Endpoint {
	var out []spmesh.Endpoint
	for _, ep := range r.eps {
		if ep.Service == service && ep.Role == role {
			out = append(out, ep)
		}
	}
	return out
}

func (r *registry) notify() {
	for ch, w := range r.watchers {
		ch <- r.matching(w.service, w.role)
	}
}

func TestDiscovery(t *testing.T) {
	reg := newRegistry()
	a := mustReplier(t, thumbnailer("a"), reqrep.WithDiscovery(reg, "thumbs"))
	mustReplier(t, thumbnailer("b"), reqrep.WithDiscovery(reg, "thumbs"))
	// Same service, another role: a plain requester must not dial it.
	mustReplier(t, thumbnailer("worker"), reqrep.WithDiscovery(reg, "thumbs"), workerFrames())
	mustReplier(t, thumbnailer("other"), reqrep.WithDiscovery(reg, "other"))

	rq := mustRequester(t, reqrep.WithDiscovery(reg, "thumbs"))
	peers(t, rq, 2)
	ctx := ctxT(t, 10*time.Second)
	seen := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				got, err := reqrep.Ask[thumb](ctx, rq, resize{"x", 1})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[got.By]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 2 || seen["a"] == 0 || seen["b"] == 0 {
		t.Fatalf("answered by %v, want both a and b and nobody else", seen)
	}

	// A replier that leaves is hung up on.
	a.Close()
	peers(t, rq, 1)
	got, err := reqrep.Ask[thumb](ctx, rq, resize{"x", 1})
	if err != nil || got.By != "b" {
		t.Fatalf("after a left: got %+v, %v, want b", got, err)
	}

	// A worker-role requester finds only the worker.
	wq := mustRequester(t, reqrep.WithDiscovery(reg, "thumbs"), workerFrames())
	peers(t, wq, 1)
	if got, err := reqrep.Ask[thumb](ctx, wq, resize{"x", 1}); err != nil || got.By != "worker" {
		t.Fatalf("worker role: got %+v, %v, want worker", got, err)
	}

	// Nobody advertises this service: ErrNoPeers.
	nq := mustRequester(t, reqrep.WithDiscovery(reg, "nobody"))
	if err := nq.Request(context.Background(), "x", nil); !errors.Is(err, spmesh.ErrNoPeers) {
		t.Fatalf("no replier in discovery: got %v, want ErrNoPeers", err)
	}
}
