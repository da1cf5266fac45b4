package discovery_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/internal/testutil"
)

// TestNoGhosts: 100 members (30 under -race) join and advertise, then half die (Close, no
// word to anyone) and half leave. Within DeadTimeout + 1 s the watcher
// lists none of their endpoints (in Watch and in Members), and none comes
// back afterwards, while memberlist declares the dead ones dead and
// forgets them (stale gossip about them must not revive their records).
func TestNoGhosts(t *testing.T) {
	if testing.Short() {
		t.Skip("100 nodes: skipped in -short")
	}
	k := 100
	if raceOn {
		// 100 memberlists under -race do not fit two shared cores in
		// the time budget of a test (even before this test's checks).
		k = 30
	}
	quiet := func(c *discovery.Config) {
		// The members only need to stay up while the mesh forms: slow
		// timings keep 100 memberlists in one -race process affordable.
		c.GossipInterval = 500 * time.Millisecond
		c.GossipNodes = 2
		c.ProbeInterval = 2 * time.Second
		c.ProbeTimeout = time.Second
		c.SuspicionMult = 6
		c.PushPullInterval = 30 * time.Second
		c.RejoinInterval = 30 * time.Second
	}
	watcher := newNode(t, "watcher", nil, func(c *discovery.Config) {
		c.ProbeInterval = 200 * time.Millisecond
		c.ProbeTimeout = 100 * time.Millisecond
	})
	ch, stop, err := watcher.Watch("ghost", spmesh.RoleReplier)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		last     []spmesh.Endpoint
		emptied  bool // a snapshot with none of theirs was seen
		revived  []spmesh.Endpoint
		watching sync.WaitGroup
	)
	watching.Go(func() {
		for eps := range ch {
			mu.Lock()
			last = eps
			if emptied && len(eps) > 0 && revived == nil {
				revived = eps
			}
			mu.Unlock()
		}
	})
	defer func() { stop(); watching.Wait() }()

	members := make([]*discovery.Node, k)
	var wg sync.WaitGroup
	for i := range k {
		members[i] = newNode(t, fmt.Sprintf("m%03d", i), []string{watcher.Addr()}, quiet)
		wg.Go(func() {
			ep := spmesh.Endpoint{Service: "ghost", Role: spmesh.RoleReplier, Addr: fmt.Sprintf("tcp://127.0.0.1:%d", 20000+i)}
			if _, err := members[i].Advertise(ep); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	formed := time.Now()
	// Forming is not what is tested: on a loaded machine pulls time out
	// and back off, so allow for it (the time taken is logged).
	testutil.Eventually(t, 90*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(last) != k {
			return fmt.Errorf("watcher lists %d endpoints, want %d (members %d, stats %+v)", len(last), k, len(watcher.Members()), watcher.Stats())
		}
		return nil
	})
	t.Logf("watcher lists all %d endpoints %v after the last member started", k, time.Since(formed).Round(time.Millisecond))

	gone := time.Now()
	for i, m := range members {
		wg.Go(func() {
			if i%2 == 0 {
				m.Close()
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			m.Leave(ctx)
		})
	}
	wg.Wait()
	bound := discovery.LocalConfig().DeadTimeout + time.Second
	testutil.Eventually(t, bound, func() error {
		mu.Lock()
		n := len(last)
		if n == 0 {
			emptied = true
		}
		mu.Unlock()
		if n != 0 {
			return fmt.Errorf("watcher still lists %d endpoints of gone members %v after they went", n, time.Since(gone).Round(time.Millisecond))
		}
		for _, m := range watcher.Members() {
			if len(m.Endpoints) > 0 {
				return fmt.Errorf("member %s still listed with %d endpoints", m.Name, len(m.Endpoints))
			}
		}
		return nil
	})
	t.Logf("all %d endpoints gone from the watch %v after the members went (bound %v)", k, time.Since(gone).Round(time.Millisecond), bound)
	// Stay gone: the members that left are forgotten by memberlist
	// DeadTimeout after they left, when stale gossip about them could
	// bring them back; watch for twice that long (an observation window for
	// something that must never happen, not a wait for a condition).
	window := 2 * discovery.LocalConfig().DeadTimeout
	testutil.Eventually(t, window+5*time.Second, func() error {
		mu.Lock()
		r := revived
		mu.Unlock()
		if r != nil || time.Since(gone) >= window {
			return nil
		}
		return fmt.Errorf("observing for %v", window)
	})
	mu.Lock()
	defer mu.Unlock()
	if revived != nil {
		t.Fatalf("endpoints came back after they were gone: %v", revived)
	}
	if len(last) != 0 {
		t.Fatalf("watcher lists %v at the end, want nothing", last)
	}
	t.Logf("watcher stats: %+v", watcher.Stats())
}
