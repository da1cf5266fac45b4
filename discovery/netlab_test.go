package discovery_test

// Multi-host tests: every host is a network namespace (internal/netlab),
// running this test binary as a child that serves the commands below. The
// mesh is wired only by service name. They need root and nft, and skip
// otherwise.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/internal/netlab"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pubsub"
	"github.com/spmesh/spmesh/reqrep"
)

// labConfig is the gossip configuration of the multi-host tests: LAN
// defaults with timings fast enough for a test (failure noticed in under
// a second, dead nodes forgotten after 1.5 s).
func labConfig(name string, port int, seeds []string) discovery.Config {
	c := discovery.LANConfig()
	c.Name = name
	c.BindPort = port
	c.Seeds = seeds
	c.GossipInterval = 50 * time.Millisecond
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.SuspicionMult = 2
	c.PushPullInterval = time.Second
	c.DeadTimeout = 1500 * time.Millisecond
	c.TCPTimeout = 500 * time.Millisecond
	c.RejoinInterval = 250 * time.Millisecond
	c.ReclaimAfter = 300 * time.Millisecond
	c.LeaveTimeout = time.Second
	return c
}

// The child's state: one node and the sockets wired through it.
var kid struct {
	mu       sync.Mutex
	name     string
	node     *discovery.Node
	start    time.Time
	closers  []func()
	wg       sync.WaitGroup
	stop     chan struct{}
	heard    map[string]time.Time // publisher node -> last message
	dialed   map[int]time.Time    // publisher peers -> first time reached
	present  map[string]bool      // watched endpoints' nodes
	goneAt   map[string]time.Time // node -> when its endpoints went
	joinedAt map[string]time.Time // node -> last join event
	reqs     map[string]*reqrep.Requester
}

func kidLocked[T any](f func() T) T {
	kid.mu.Lock()
	defer kid.mu.Unlock()
	return f()
}

var childCommands = netlab.Commands{
	// start NAME PORT SEEDS: start a node.
	"start": func(a []string) (string, error) {
		port, _ := strconv.Atoi(a[1])
		var seeds []string
		if a[2] != "" {
			seeds = strings.Split(a[2], ",")
		}
		t0 := time.Now()
		n, err := discovery.New(labConfig(a[0], port, seeds))
		if err != nil {
			return "", err
		}
		kid.mu.Lock()
		kid.name, kid.node, kid.start = a[0], n, t0
		kid.stop = make(chan struct{})
		kid.heard, kid.dialed = map[string]time.Time{}, map[int]time.Time{}
		kid.present, kid.goneAt, kid.joinedAt = map[string]bool{}, map[string]time.Time{}, map[string]time.Time{}
		kid.reqs = map[string]*reqrep.Requester{}
		kid.mu.Unlock()
		kid.wg.Go(func() {
			for ev := range n.Events() {
				if ev.Type == discovery.EventJoin {
					kidLocked(func() any { kid.joinedAt[ev.Node] = ev.Time; return nil })
				}
			}
		})
		return n.AdvertiseHost(), nil
	},
	// pub SERVICE: publish our name every 10 ms; record when subscribers dial.
	"pub": func(a []string) (string, error) {
		p, err := pubsub.NewPublisher(pubsub.WithDiscovery(kid.node, a[0]))
		if err != nil {
			return "", err
		}
		stop := kid.stop
		kid.closers = append(kid.closers, func() { p.Close() })
		kid.wg.Go(func() {
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				now := time.Now()
				kid.mu.Lock()
				for k := 1; k <= p.Stats().Peers; k++ {
					if _, ok := kid.dialed[k]; !ok {
						kid.dialed[k] = now
					}
				}
				kid.mu.Unlock()
				if i%10 == 0 {
					p.Publish(context.Background(), "tick", kid.name)
				}
			}
		})
		return "", nil
	},
	// dialed K: milliseconds from the node's start until K subscribers dialed.
	"dialed": func(a []string) (string, error) {
		k, _ := strconv.Atoi(a[0])
		kid.mu.Lock()
		defer kid.mu.Unlock()
		at, ok := kid.dialed[k]
		if !ok {
			return "", fmt.Errorf("%s: fewer than %d subscribers dialed", kid.name, k)
		}
		return fmt.Sprint(at.Sub(kid.start).Milliseconds()), nil
	},
	// sub SERVICE: subscribe and record the last message of each publisher.
	"sub": func(a []string) (string, error) {
		s, err := pubsub.NewSubscriber(pubsub.WithDiscovery(kid.node, a[0]), pubsub.WithSubscribe(">"))
		if err != nil {
			return "", err
		}
		kid.closers = append(kid.closers, func() { s.Close() })
		kid.wg.Go(func() {
			for m := range s.C() {
				if from, err := spmesh.Decode[string](m); err == nil {
					kidLocked(func() any { kid.heard[from] = time.Now(); return nil })
				}
			}
		})
		return "", nil
	},
	// heard NODE MS: succeeds when NODE's publisher was heard in the last MS.
	"heard": func(a []string) (string, error) {
		ms, _ := strconv.Atoi(a[1])
		kid.mu.Lock()
		defer kid.mu.Unlock()
		if at, ok := kid.heard[a[0]]; !ok || time.Since(at) > time.Duration(ms)*time.Millisecond {
			return "", fmt.Errorf("%s: nothing from %s in the last %d ms", kid.name, a[0], ms)
		}
		return "", nil
	},
	// watch SERVICE ROLE: follow the endpoints, recording when a node's go.
	"watch": func(a []string) (string, error) {
		ch, stop, err := kid.node.Watch(a[0], spmesh.Role(a[1]))
		if err != nil {
			return "", err
		}
		kid.closers = append(kid.closers, stop)
		kid.wg.Go(func() {
			for eps := range ch {
				now := time.Now()
				kid.mu.Lock()
				seen := map[string]bool{}
				for _, e := range eps {
					seen[e.Node] = true
					if !kid.present[e.Node] {
						kid.present[e.Node] = true
						delete(kid.goneAt, e.Node)
					}
				}
				for n := range kid.present {
					if !seen[n] {
						delete(kid.present, n)
						kid.goneAt[n] = now
					}
				}
				kid.mu.Unlock()
			}
		})
		return "", nil
	},
	// present NODE: succeeds when NODE's endpoints are watched.
	"present": func(a []string) (string, error) {
		if !kidLocked(func() bool { return kid.present[a[0]] }) {
			return "", fmt.Errorf("%s: no endpoint of %s", kid.name, a[0])
		}
		return "", nil
	},
	// goneat NODE: when NODE's endpoints disappeared (Unix ns).
	"goneat": func(a []string) (string, error) {
		kid.mu.Lock()
		defer kid.mu.Unlock()
		at, ok := kid.goneAt[a[0]]
		if !ok {
			return "", fmt.Errorf("%s: endpoints of %s still there", kid.name, a[0])
		}
		return fmt.Sprint(at.UnixNano()), nil
	},
	// joinedat NODE: when NODE last joined (Unix ns).
	"joinedat": func(a []string) (string, error) {
		at := kidLocked(func() time.Time { return kid.joinedAt[a[0]] })
		if at.IsZero() {
			return "", fmt.Errorf("%s: %s never joined", kid.name, a[0])
		}
		return fmt.Sprint(at.UnixNano()), nil
	},
	// members: the live members' names, comma-separated.
	"members": func(a []string) (string, error) {
		var out []string
		for _, m := range kid.node.Members() {
			out = append(out, m.Name)
		}
		return strings.Join(out, ","), nil
	},
	// rep SERVICE: answer requests with our name.
	"rep": func(a []string) (string, error) {
		name := kid.name
		r, err := reqrep.NewReplier(reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
			return name, nil
		}), reqrep.WithDiscovery(kid.node, a[0]))
		if err != nil {
			return "", err
		}
		kid.closers = append(kid.closers, func() { r.Close() })
		return "", nil
	},
	// req SERVICE N: make N requests; report who answered, sorted.
	"req": func(a []string) (string, error) {
		k, _ := strconv.Atoi(a[1])
		r := kidLocked(func() *reqrep.Requester { return kid.reqs[a[0]] })
		if r == nil {
			var err error
			r, err = reqrep.NewRequester(reqrep.WithDiscovery(kid.node, a[0]),
				reqrep.WithAttemptTimeout(300*time.Millisecond), reqrep.WithWaitForReplier())
			if err != nil {
				return "", err
			}
			kidLocked(func() any { kid.reqs[a[0]] = r; return nil })
			kid.closers = append(kid.closers, func() { r.Close() })
		}
		// k requests at once: mangos REQ hands sequential requests to the
		// replier that answered last, while concurrent ones spread.
		who := make([]string, k)
		errs := make([]error, k)
		var wg sync.WaitGroup
		for i := range k {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				errs[i] = r.Request(ctx, "who", &who[i])
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return "", err
		}
		slices.Sort(who)
		return strings.Join(slices.Compact(who), ","), nil
	},
	// stop: close the sockets and leave.
	"stop": func(a []string) (string, error) {
		close(kid.stop)
		for _, c := range kid.closers {
			c()
		}
		kid.closers = nil
		err := kid.node.Leave(context.Background())
		kid.wg.Wait()
		return "", err
	},
}

// call runs a command in a child, failing the test on error.
func call(t *testing.T, p *netlab.Proc, cmd string, args ...string) string {
	t.Helper()
	out, err := p.Call(cmd, args...)
	if err != nil {
		t.Fatalf("%s %v on %s: %v", cmd, args, p.Host.NS, err)
	}
	return out
}

// await retries a command until it succeeds.
func await(t *testing.T, timeout time.Duration, p *netlab.Proc, cmd string, args ...string) string {
	t.Helper()
	var out string
	testutil.Eventually(t, timeout, func() error {
		var err error
		out, err = p.Call(cmd, args...)
		return err
	})
	return out
}

// awaitOut retries a command until it answers want.
func awaitOut(t *testing.T, timeout time.Duration, p *netlab.Proc, want, cmd string, args ...string) {
	t.Helper()
	testutil.Eventually(t, timeout, func() error {
		got, err := p.Call(cmd, args...)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s %v on %s: got %q, want %q", cmd, args, p.Host.NS, got, want)
		}
		return nil
	})
}

// awaitMembers waits until p's node sees exactly want (comma-separated).
func awaitMembers(t *testing.T, timeout time.Duration, p *netlab.Proc, want string) {
	t.Helper()
	testutil.Eventually(t, timeout, func() error {
		got, err := p.Call("members")
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s sees members %q, want %q", p.Host.NS, got, want)
		}
		return nil
	})
}

func unixNano(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Unix(0, v)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// seed is host 0's gossip address.
const seed = netlab.Subnet + ".1:7946"

// TestNetlabWiring: pub/sub and req/rep across 3 hosts wired only by
// service name; measures the time from a node's start to being dialed.
func TestNetlabWiring(t *testing.T) {
	lab := netlab.New(t, 3)
	p := make([]*netlab.Proc, 3)
	for i, h := range lab.Hosts {
		p[i] = h.Start(t)
		call(t, p[i], "start", fmt.Sprintf("h%d", i), "7946", seed)
	}
	for _, i := range []int{0, 1} {
		call(t, p[i], "sub", "events")
		call(t, p[i], "rep", "thumbs")
	}
	call(t, p[2], "pub", "events")
	for _, q := range p {
		awaitMembers(t, 10*time.Second, q, "h0,h1,h2")
	}
	for _, i := range []int{0, 1} {
		await(t, 10*time.Second, p[i], "heard", "h2", "200")
	}
	awaitOut(t, 10*time.Second, p[2], "h0,h1", "req", "thumbs", "20")
	// Start-to-dialed: restart h2's node and publisher under new names.
	var dials []time.Duration
	for run := range 5 {
		call(t, p[2], "stop")
		call(t, p[2], "start", fmt.Sprintf("h2-run%d", run), "7946", seed)
		call(t, p[2], "pub", "events")
		ms := await(t, 10*time.Second, p[2], "dialed", "2")
		v, _ := strconv.Atoi(ms)
		dials = append(dials, time.Duration(v)*time.Millisecond)
		for _, i := range []int{0, 1} {
			await(t, 10*time.Second, p[i], "heard", fmt.Sprintf("h2-run%d", run), "200")
		}
	}
	t.Logf("netlab: start to dialed by 2 subscribers: median %v of %v", median(dials), dials)
}

// TestNetlabKill: a host's process is SIGKILLed; its peers unwire it and
// requests go to the survivor. It restarts each run under the same name on
// a new port (the old incarnation dead), which the mesh accepts.
func TestNetlabKill(t *testing.T) {
	lab := netlab.New(t, 3)
	h0, h1 := lab.Hosts[0].Start(t), lab.Hosts[1].Start(t)
	call(t, h0, "start", "h0", "7946", seed)
	call(t, h1, "start", "h1", "7946", seed)
	for _, p := range []*netlab.Proc{h0, h1} {
		call(t, p, "sub", "events")
		call(t, p, "watch", "events", string(spmesh.RolePublisher))
	}
	call(t, h1, "rep", "thumbs")
	var unwire []time.Duration
	for run := range 4 {
		h2 := lab.Hosts[2].Start(t)
		call(t, h2, "start", "h2", fmt.Sprint(7946+run%2), seed)
		call(t, h2, "pub", "events")
		call(t, h2, "rep", "thumbs")
		for _, p := range []*netlab.Proc{h0, h1} {
			await(t, 10*time.Second, p, "heard", "h2", "200")
		}
		awaitOut(t, 10*time.Second, h0, "h1,h2", "req", "thumbs", "20")
		t0 := time.Now()
		h2.Kill()
		for _, p := range []*netlab.Proc{h0, h1} {
			at := unixNano(t, await(t, 10*time.Second, p, "goneat", "h2"))
			unwire = append(unwire, at.Sub(t0))
		}
		if got := call(t, h0, "req", "thumbs", "20"); got != "h1" {
			t.Fatalf("run %d after the kill: repliers that answered: got %q, want h1", run, got)
		}
		awaitMembers(t, 10*time.Second, h0, "h0,h1")
	}
	t.Logf("netlab: SIGKILL to unwired (endpoints gone from Watch): median %v of %v", median(unwire), unwire)
}

// TestNetlabPartition: a partition outlasting the dead-node timeout, then
// a heal: the mesh merges again and traffic resumes.
func TestNetlabPartition(t *testing.T) {
	lab := netlab.New(t, 3)
	p := make([]*netlab.Proc, 3)
	for i, h := range lab.Hosts {
		p[i] = h.Start(t)
		call(t, p[i], "start", fmt.Sprintf("h%d", i), "7946", seed)
	}
	call(t, p[0], "sub", "events")
	call(t, p[2], "pub", "events")
	dead := labConfig("", 0, nil).DeadTimeout
	var merge, resume []time.Duration
	for run := range 3 {
		for _, q := range p {
			awaitMembers(t, 10*time.Second, q, "h0,h1,h2")
		}
		await(t, 10*time.Second, p[0], "heard", "h2", "100")
		lab.Partition(lab.Hosts[:2], lab.Hosts[2:])
		awaitMembers(t, 10*time.Second, p[0], "h0,h1")
		awaitMembers(t, 10*time.Second, p[2], "h2")
		// The fault's duration, not a wait for a condition: long enough
		// that memberlist forgets the dead side and would not heal alone.
		time.Sleep(dead + 500*time.Millisecond)
		if _, err := p[0].Call("heard", "h2", "1000"); err == nil {
			t.Fatalf("run %d: h0 still hears h2 across the partition, want silence", run)
		}
		t0 := time.Now()
		lab.Heal()
		for _, q := range p {
			awaitMembers(t, 10*time.Second, q, "h0,h1,h2")
		}
		var last time.Time
		for _, j := range []struct {
			p    *netlab.Proc
			node string
		}{{p[0], "h2"}, {p[1], "h2"}, {p[2], "h0"}, {p[2], "h1"}} {
			if at := unixNano(t, call(t, j.p, "joinedat", j.node)); at.After(last) {
				last = at
			}
		}
		merge = append(merge, last.Sub(t0))
		await(t, 10*time.Second, p[0], "heard", "h2", "20")
		resume = append(resume, time.Since(t0))
	}
	t.Logf("netlab: heal to merged (all join events seen): median %v of %v", median(merge), merge)
	t.Logf("netlab: heal to pub/sub traffic observed again (upper bound, polled): median %v of %v", median(resume), resume)
}

// TestNetlabLoss: 10% packet loss on every host; gossip still converges and
// the mesh wires.
func TestNetlabLoss(t *testing.T) {
	const n = 5
	lab := netlab.New(t, n)
	for _, h := range lab.Hosts {
		lab.Loss(h, 10)
	}
	p := make([]*netlab.Proc, n)
	var all []string
	for i, h := range lab.Hosts {
		p[i] = h.Start(t)
		call(t, p[i], "start", fmt.Sprintf("h%d", i), "7946", seed)
		call(t, p[i], "sub", "events")
		all = append(all, fmt.Sprintf("h%d", i))
	}
	call(t, p[n-1], "pub", "events")
	t0 := time.Now()
	for _, q := range p {
		awaitMembers(t, 20*time.Second, q, strings.Join(all, ","))
	}
	for _, q := range p {
		await(t, 20*time.Second, q, "heard", fmt.Sprintf("h%d", n-1), "500")
	}
	t.Logf("netlab: 5 hosts under 10%% loss converged and wired in %v", time.Since(t0))
}
