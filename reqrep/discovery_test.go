package reqrep_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/pipeline"
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
	worked := make(chan struct{}, 1)
	w, err := pipeline.NewWorker(pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		worked <- struct{}{}
		return nil
	}), pipeline.WithDiscovery(reg, "thumbs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
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

	// A producer of the same service finds only the worker.
	wq, err := pipeline.NewProducer(pipeline.WithDiscovery(reg, "thumbs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wq.Close() })
	if err := wq.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := wq.Produce(ctx, resize{"x", 1}); err != nil || len(worked) != 1 || wq.Stats().Peers != 1 {
		t.Fatalf("producer: got %v, %d jobs worked, %d peers, want nil, 1 and 1 (the worker alone)", err, len(worked), wq.Stats().Peers)
	}

	// Nobody advertises this service: ErrNoPeers.
	nq := mustRequester(t, reqrep.WithDiscovery(reg, "nobody"))
	if err := nq.Request(context.Background(), "x", nil); !errors.Is(err, spmesh.ErrNoPeers) {
		t.Fatalf("no replier in discovery: got %v, want ErrNoPeers", err)
	}
}
