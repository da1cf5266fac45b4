package discovery_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/internal/testutil"
)

// TestAdvertiseVisibleSoon starts nodes that advertise an endpoint right
// after New (while their join of the seed is still running in the
// background, as a Worker wired through a fresh node does) and checks that
// a peer other than the seed sees the endpoint within a bound well under
// the push/pull interval: the endpoint must travel by gossip or by the join
// itself, not wait for the next anti-entropy exchange. Each node is closed
// without leaving, so the mesh fills with members that no longer answer but
// are not yet declared dead (a worker just killed): memberlist's few gossip
// transmissions of the news often went to those alone, and the watcher
// missed it (about one start in six) until the next push/pull.
func TestAdvertiseVisibleSoon(t *testing.T) {
	slow := func(c *discovery.Config) {
		c.PushPullInterval = 30 * time.Second // far beyond the bound below
		c.RejoinInterval = 30 * time.Second
	}
	seed := newNode(t, "seed", nil, slow)
	watcher := newNode(t, "watcher", []string{seed.Addr()}, slow)
	converged(t, []*discovery.Node{seed, watcher}, 2)
	ch, stop, err := watcher.Watch("late", spmesh.RoleWorker)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	const bound = 3 * time.Second // a tenth of the push/pull interval
	var worst time.Duration
	for i := range 12 {
		name := fmt.Sprintf("late%d", i)
		n := newNode(t, name, []string{seed.Addr()}, slow)
		ep := spmesh.Endpoint{Service: "late", Role: spmesh.RoleWorker, Addr: fmt.Sprintf("tcp://127.0.0.1:%d", 20000+i)}
		start := time.Now()
		if _, err := n.Advertise(ep); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, bound, func() error {
			for {
				select {
				case eps := <-ch:
					for _, e := range eps {
						if e.Node == name {
							return nil
						}
					}
				default:
					return fmt.Errorf("got no endpoint of %s at the watcher, want it within %v", name, bound)
				}
			}
		})
		d := time.Since(start)
		worst = max(worst, d)
		t.Logf("%s: visible after %v", name, d)
		n.Close()
	}
	t.Logf("worst: %v", worst)
}
