package discovery_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pipeline"
	"github.com/spmesh/spmesh/reqrep"
)

// An enveloped and a bare replier under one service name, on two members
// of a real mesh: an enveloped Requester dials only the enveloped one, a
// bare Requester only the bare one; each refuses the other endpoint once
// (Stats.EndpointsRefused, LastError naming the framing), and no replier
// sees a frame it cannot read.
func TestBareRepliersMarked(t *testing.T) {
	nodes := mesh(t, 3)
	converged(t, nodes, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	serve := func(name string) reqrep.Handler {
		return reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) { return name, nil })
	}
	env, err := reqrep.NewReplier(serve("env"), reqrep.WithDiscovery(nodes[1], "thumbs"))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	bare, err := reqrep.NewReplier(serve("bare"), reqrep.WithDiscovery(nodes[2], "thumbs"), reqrep.WithBareFrames())
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	testutil.Eventually(t, 20*time.Second, func() error {
		eps := nodes[0].Endpoints("thumbs", spmesh.RoleReplier)
		if len(eps) != 2 || eps[0].Bare == eps[1].Bare {
			return fmt.Errorf("repliers known to n0: got %v, want one bare and one enveloped", eps)
		}
		return nil
	})

	for _, tc := range []struct {
		want string
		opts []reqrep.Option
	}{
		{"env", nil},
		{"bare", []reqrep.Option{reqrep.WithBareFrames()}},
	} {
		opts := append([]reqrep.Option{reqrep.WithDiscovery(nodes[0], "thumbs"), reqrep.WithWaitForReplier(),
			reqrep.WithAttemptTimeout(time.Second)}, tc.opts...)
		rq, err := reqrep.NewRequester(opts...)
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 20*time.Second, func() error {
			if st := rq.Stats(); st.Peers != 1 || st.EndpointsRefused != 1 {
				return fmt.Errorf("%s requester: got %d connections, %d endpoints refused, want 1 and 1", tc.want, st.Peers, st.EndpointsRefused)
			}
			return nil
		})
		for range 10 {
			var who string
			if err := rq.Request(ctx, "who", &who); err != nil || who != tc.want {
				t.Fatalf("%s requester: got %q, %v, want %q", tc.want, who, err, tc.want)
			}
		}
		if st := rq.Stats(); st.EndpointsRefused != 1 || st.Peers != 1 || !strings.Contains(st.LastError, "bare") {
			t.Fatalf("%s requester: got %d endpoints refused, %d connections, last error %q, want 1, 1 and the framing named",
				tc.want, st.EndpointsRefused, st.Peers, st.LastError)
		}
		rq.Close()
	}
	if st := env.Stats(); st.DecodeErrors != 0 || st.Received != 10 {
		t.Fatalf("enveloped replier: got %d requests, %d decode errors, want 10 and 0", st.Received, st.DecodeErrors)
	}
	if st := bare.Stats(); st.Received != 10 {
		t.Fatalf("bare replier: got %d requests, want 10", st.Received)
	}
}

// Likewise for push/pull: a bare Pusher feeds only the bare Puller of a
// service, an enveloped one only the enveloped Puller.
func TestBarePullersMarked(t *testing.T) {
	nodes := mesh(t, 3)
	converged(t, nodes, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env, err := pipeline.NewPuller(pipeline.WithDiscovery(nodes[1], "jobs"))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	bare, err := pipeline.NewPuller(pipeline.WithDiscovery(nodes[2], "jobs"), pipeline.WithBareFrames())
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	testutil.Eventually(t, 20*time.Second, func() error {
		if eps := nodes[0].Endpoints("jobs", spmesh.RolePuller); len(eps) != 2 {
			return fmt.Errorf("pullers known to n0: got %v, want 2", eps)
		}
		return nil
	})
	for _, tc := range []struct {
		name string
		to   *pipeline.Puller
		opts []pipeline.Option
	}{
		{"enveloped", env, nil},
		{"bare", bare, []pipeline.Option{pipeline.WithBareFrames()}},
	} {
		p, err := pipeline.NewPusher(append([]pipeline.Option{pipeline.WithDiscovery(nodes[0], "jobs")}, tc.opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 20*time.Second, func() error {
			if st := p.Stats(); st.Peers != 1 || st.EndpointsRefused != 1 {
				return fmt.Errorf("%s pusher: got %d connections, %d endpoints refused, want 1 and 1", tc.name, st.Peers, st.EndpointsRefused)
			}
			return nil
		})
		for i := range 10 {
			if err := p.Push(ctx, i); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 10 {
			m, err := tc.to.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if v, err := spmesh.Decode[int](m); err != nil || v != i {
				t.Fatalf("%s puller: got %d, %v, want %d", tc.name, v, err, i)
			}
		}
		p.Close()
	}
	for _, pl := range []*pipeline.Puller{env, bare} {
		if st := pl.Stats(); st.Received != 10 || st.DecodeErrors != 0 {
			t.Fatalf("got %d received, %d decode errors, want 10 and 0", st.Received, st.DecodeErrors)
		}
	}
}
