package sock_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/reqrep"
)

func meshNode(t *testing.T, name string, pol spmesh.TLSPolicy, seeds ...string) *discovery.Node {
	t.Helper()
	cfg := discovery.LocalConfig()
	cfg.Name = name
	cfg.TLS = pol
	cfg.Seeds = seeds
	n, err := discovery.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Leave(ctx)
	})
	if len(seeds) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := n.Join(ctx, seeds...); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// The case, end to end over memberlist: a replier given WithTLS
// and discovery (no WithListen) listens and advertises tls+tcp://; an
// insider advertises the same service on plain tcp://. A requester with
// TLS (WithTLS alone, or the node's policy with Require) sends none of 320
// requests to the insider and counts the refused endpoint.
func TestMeshRequestsNeverPlaintext(t *testing.T) {
	m := newMesh(t)
	srvCert := m.cert("secure", "127.0.0.1")
	cliCert := m.cert("caller", "127.0.0.1")
	seed := meshNode(t, "seed", spmesh.TLSPolicy{})
	// The secure node's own gossip exchange serves its records over TLS
	// (to a caller that requires it) and in plaintext (to the seed).
	secureNode := meshNode(t, "secure", spmesh.TLSPolicy{Server: m.ca.Server(srvCert, true), Client: m.ca.Client(&srvCert)}, seed.Addr())
	insiderNode := meshNode(t, "insider", spmesh.TLSPolicy{}, seed.Addr())
	callerNode := meshNode(t, "caller", spmesh.TLSPolicy{Server: m.ca.Server(cliCert, true), Client: m.ca.Client(&cliCert), Require: true}, seed.Addr())

	var nSecure, nInsider atomic.Int64
	handler := func(n *atomic.Int64, who string) reqrep.Handler {
		return reqrep.HandlerFunc(func(context.Context, *reqrep.Request) (any, error) { n.Add(1); return who, nil })
	}
	secure, err := reqrep.NewReplier(handler(&nSecure, "secure"), reqrep.WithDiscovery(secureNode, "echo"), reqrep.WithTLS(m.ca.Server(srvCert, true)))
	if err != nil {
		t.Fatal(err)
	}
	defer secure.Close()
	if a := secure.Addrs(); len(a) != 1 || !strings.HasPrefix(a[0], "tls+tcp://") {
		t.Fatalf("got replier addresses %v, want one tls+tcp://", a)
	}
	insider, err := reqrep.NewReplier(handler(&nInsider, "insider"), reqrep.WithDiscovery(insiderNode, "echo"))
	if err != nil {
		t.Fatal(err)
	}
	defer insider.Close()

	for _, c := range []struct {
		name string
		reg  spmesh.Registry
		opts []reqrep.Option
		// refused: how the insider's plaintext endpoint is refused. A socket
		// given WithTLS sees it and refuses to dial it; a node that requires
		// TLS never even takes the records of a member it cannot pull from
		// over TLS (counted in the node's Stats).
		refused func(spmesh.Stats) (uint64, string)
	}{
		{"WithTLS", seed, []reqrep.Option{reqrep.WithTLS(m.ca.Client(&cliCert))},
			func(st spmesh.Stats) (uint64, string) { return st.EndpointsRefused, st.LastError }},
		{"node policy with Require", callerNode, nil,
			func(spmesh.Stats) (uint64, string) { st := callerNode.Stats(); return st.PullErrors, st.LastError }},
	} {
		t.Run(c.name, func(t *testing.T) {
			nSecure.Store(0)
			nInsider.Store(0)
			rq, err := reqrep.NewRequester(append([]reqrep.Option{reqrep.WithDiscovery(c.reg, "echo")}, c.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer rq.Close()
			testutil.Eventually(t, 20*time.Second, func() error {
				st := rq.Stats()
				if n, last := c.refused(st.Stats); st.Peers != 1 || n == 0 {
					return fmt.Errorf("got %d peers, %d refusals (last error %q), want 1 and > 0", st.Peers, n, last)
				}
				return nil
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for i := range 320 {
				var who string
				if err := rq.Request(ctx, i, &who); err != nil || who != "secure" {
					t.Fatalf("request %d: got %q %v, want secure", i, who, err)
				}
			}
			if got := nInsider.Load(); got != 0 {
				t.Fatalf("got %d of 320 requests at the plaintext insider, want 0", got)
			}
			if got := nSecure.Load(); got != 320 {
				t.Fatalf("got %d requests at the TLS replier, want 320", got)
			}
		})
	}
}
