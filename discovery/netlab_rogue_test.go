package discovery_test

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/netlab"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/reqrep"
)

// The rogue test's child state.
var rogue struct {
	mu       sync.Mutex
	seen     map[string]map[string]bool // service -> endpoint addresses ever watched
	accepted atomic.Int64               // connections to the decoy
}

func init() {
	rogue.seen = map[string]map[string]bool{}
	// decoy PORT: an unrelated service on this host that counts connections.
	childCommands["decoy"] = func(a []string) (string, error) {
		ln, err := net.Listen("tcp", ":"+a[0])
		if err != nil {
			return "", err
		}
		kid.closers = append(kid.closers, func() { ln.Close() })
		kid.wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				rogue.accepted.Add(1)
				c.Close()
			}
		})
		return "", nil
	}
	// accepted: connections the decoy took.
	childCommands["accepted"] = func(a []string) (string, error) {
		return fmt.Sprint(rogue.accepted.Load()), nil
	}
	// advertise SERVICE ADDR...: advertise replier endpoints as given.
	childCommands["advertise"] = func(a []string) (string, error) {
		for _, addr := range a[1:] {
			if _, err := kid.node.Advertise(spmesh.Endpoint{Service: a[0], Role: spmesh.RoleReplier, Addr: addr}); err != nil {
				return "", err
			}
		}
		return "", nil
	}
	// seen SERVICE: follow the repliers of SERVICE with a requester wired
	// through the node (so it dials what the node lists) and a watch; the
	// addresses ever listed, comma-separated, sorted.
	childCommands["seen"] = func(a []string) (string, error) {
		rogue.mu.Lock()
		m, ok := rogue.seen[a[0]]
		if !ok {
			m = map[string]bool{}
			rogue.seen[a[0]] = m
		}
		rogue.mu.Unlock()
		if !ok {
			r, err := reqrep.NewRequester(reqrep.WithDiscovery(kid.node, a[0]))
			if err != nil {
				return "", err
			}
			kid.closers = append(kid.closers, func() { r.Close() })
			ch, stop, err := kid.node.Watch(a[0], spmesh.RoleReplier)
			if err != nil {
				return "", err
			}
			kid.closers = append(kid.closers, stop)
			kid.wg.Go(func() {
				for eps := range ch {
					rogue.mu.Lock()
					for _, e := range eps {
						m[e.Addr] = true
					}
					rogue.mu.Unlock()
				}
			})
		}
		rogue.mu.Lock()
		defer rogue.mu.Unlock()
		var out []string
		for addr := range m {
			out = append(out, addr)
		}
		slices.Sort(out)
		return strings.Join(out, ","), nil
	}
	// refused: the node's EndpointsRefused.
	childCommands["refused"] = func(a []string) (string, error) {
		return fmt.Sprint(kid.node.Stats().EndpointsRefused), nil
	}
}

// TestNetlabRogue: across hosts, a rogue member advertises a port of an
// unrelated service on another host, the cloud metadata address, and the
// unspecified address for a service that the victim's requester follows.
// The victim never lists nor dials any of them (the unrelated service
// takes no connection), counts each refusal, and still lists the rogue's
// endpoint on its own address.
func TestNetlabRogue(t *testing.T) {
	lab := netlab.New(t, 3)
	p := make([]*netlab.Proc, 3)
	for i, h := range lab.Hosts {
		p[i] = h.Start(t)
		call(t, p[i], "start", fmt.Sprintf("h%d", i), "7946", seed)
	}
	victim, bystander, rog := p[0], p[1], p[2]
	call(t, bystander, "decoy", "5432")
	for _, q := range p {
		awaitMembers(t, 10*time.Second, q, "h0,h1,h2")
	}
	call(t, victim, "seen", "db")
	bad := []string{"tcp://" + lab.Hosts[1].IP + ":5432", "tcp://169.254.169.254:80", "tcp://0.0.0.0:5432", "tcp://127.0.0.1:5432"}
	own := "tcp://" + lab.Hosts[2].IP + ":7001"
	call(t, rog, "advertise", append([]string{"db", own}, bad...)...)
	awaitOut(t, 10*time.Second, victim, own, "seen", "db")
	testutil.Eventually(t, 10*time.Second, func() error {
		got, err := victim.Call("refused")
		if err != nil {
			return err
		}
		if k, _ := strconv.Atoi(got); k < len(bad) {
			return fmt.Errorf("victim's EndpointsRefused: got %s, want at least %d", got, len(bad))
		}
		return nil
	})
	if got := call(t, bystander, "accepted"); got != "0" {
		t.Fatalf("unrelated service on h1: got %s connections, want 0", got)
	}
}
