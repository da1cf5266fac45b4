package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pipeline"
	"github.com/spmesh/spmesh/pubsub"
	"github.com/spmesh/spmesh/reqrep"
)

// newNode starts a loopback node joined to seeds, closed at cleanup.
func newNode(t *testing.T, name string, seeds []string, mod ...func(*discovery.Config)) *discovery.Node {
	t.Helper()
	c := discovery.LocalConfig()
	c.Name = name
	c.Seeds = seeds
	for _, m := range mod {
		m(&c)
	}
	n, err := discovery.New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// mesh starts k nodes seeded by the first.
func mesh(t *testing.T, k int, mod ...func(*discovery.Config)) []*discovery.Node {
	t.Helper()
	first := newNode(t, "n0", nil, mod...)
	nodes := []*discovery.Node{first}
	for i := 1; i < k; i++ {
		nodes = append(nodes, newNode(t, fmt.Sprintf("n%d", i), []string{first.Addr()}, mod...))
	}
	return nodes
}

func names(ms []discovery.Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

// converged waits until every node sees want members. The bound is generous:
// CI runs this beside other packages' processes on two cores, with -race.
func converged(t *testing.T, nodes []*discovery.Node, want int) {
	t.Helper()
	testutil.Eventually(t, 90*time.Second, func() error {
		for _, n := range nodes {
			if got := len(n.Members()); got != want {
				return fmt.Errorf("%s sees %d members %v, want %d", n.Name(), got, names(n.Members()), want)
			}
		}
		return nil
	})
}

// patient keeps a starved node (20 in one -race process, on a loaded
// machine) from being probed to death while the mesh forms: this test is
// about convergence, not failure detection.
func patient(c *discovery.Config) {
	c.ProbeInterval = time.Second
	c.ProbeTimeout = time.Second
	c.SuspicionMult = 6
}

func TestMeshConverges(t *testing.T) {
	nodes := mesh(t, 20, patient)
	converged(t, nodes, 20)
	// Services advertised on one node are seen by all the others (the
	// deadlines allow for pulls that time out and back off on a loaded
	// machine; a quiet one takes about a second).
	wd, err := nodes[7].Advertise(ep("thumbnails", spmesh.RoleReplier, "tcp://127.0.0.1:7001"))
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		for _, n := range nodes {
			got := n.Endpoints("thumbnails", spmesh.RoleReplier)
			if len(got) != 1 || got[0].Node != "n7" || got[0].Addr != "tcp://127.0.0.1:7001" {
				return fmt.Errorf("%s sees %v, want the replier of n7", n.Name(), got)
			}
		}
		return nil
	})
	wd()
	testutil.Eventually(t, 30*time.Second, func() error {
		for _, n := range nodes {
			if got := n.Endpoints("thumbnails", spmesh.RoleReplier); len(got) != 0 {
				return fmt.Errorf("%s sees %v after withdraw, want none", n.Name(), got)
			}
		}
		return nil
	})
	// A node that leaves is dropped by all.
	if err := nodes[19].Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	converged(t, nodes[:19], 19)
}

// pubSubRoundTrip wires a publisher through pubReg and a subscriber through
// subReg by service name only, and checks a message goes through.
func pubSubRoundTrip(t *testing.T, pubReg, subReg spmesh.Registry, service string) (*pubsub.Publisher, *pubsub.Subscriber) {
	t.Helper()
	p, err := pubsub.NewPublisher(pubsub.WithDiscovery(pubReg, service))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	s, err := pubsub.NewSubscriber(pubsub.WithDiscovery(subReg, service), pubsub.WithSubscribe(">"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	testutil.Eventually(t, 20*time.Second, func() error {
		if err := p.Publish(context.Background(), "hello", "world"); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		m, err := s.Next(ctx)
		if err != nil {
			return fmt.Errorf("subscriber received nothing: %w", err)
		}
		if v, err := spmesh.Decode[string](m); err != nil || v != "world" {
			return fmt.Errorf("got %q, %v, want \"world\"", v, err)
		}
		return nil
	})
	return p, s
}

func TestPubSubWiredByName(t *testing.T) {
	nodes := mesh(t, 3)
	converged(t, nodes, 3)
	_, s := pubSubRoundTrip(t, nodes[1], nodes[2], "events")
	if got := s.Stats().Peers; got != 1 {
		t.Fatalf("subscriber peers: got %d, want 1", got)
	}
	// The publisher's node leaves: its endpoint disappears and the
	// subscriber hangs up.
	ch, stop, err := nodes[2].Watch("events", spmesh.RolePublisher)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if got := next(t, ch); len(got) != 1 || got[0].Node != "n1" {
		t.Fatalf("watch: got %v, want the publisher on n1", got)
	}
	if err := nodes[1].Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := next(t, ch); len(got) != 0 {
		t.Fatalf("watch after leave: got %v, want none", got)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := s.Stats().Peers; got != 0 {
			return fmt.Errorf("subscriber peers: got %d, want 0", got)
		}
		return nil
	})
}

func TestManyServices(t *testing.T) {
	nodes := mesh(t, 2)
	converged(t, nodes, 2)
	var want []string
	for i := range 50 {
		a := fmt.Sprintf("tcp://127.0.0.1:%d", 20000+i)
		svc := fmt.Sprintf("service-with-a-fairly-long-name-%02d", i)
		if _, err := nodes[0].Advertise(ep(svc, spmesh.RoleWorker, a)); err != nil {
			t.Fatal(err)
		}
		want = append(want, svc+"|"+a)
	}
	slices.Sort(want)
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, m := range nodes[1].Members() {
			if m.Name != "n0" {
				continue
			}
			var got []string
			for _, e := range m.Endpoints {
				got = append(got, e.Service+"|"+e.Addr)
			}
			slices.Sort(got)
			if !m.Complete || !slices.Equal(got, want) {
				return fmt.Errorf("n1 sees %d endpoints of n0 (complete %v), want 50", len(got), m.Complete)
			}
			return nil
		}
		return errors.New("n1 does not see n0")
	})
	// Watch on one of them from the other node.
	ch, stop, err := nodes[1].Watch("service-with-a-fairly-long-name-42", spmesh.RoleWorker)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if got := next(t, ch); len(got) != 1 || got[0].Addr != "tcp://127.0.0.1:20042" {
		t.Fatalf("watch: got %v, want port 20042", got)
	}
	// A late joiner gets them all too.
	late := newNode(t, "late", []string{nodes[1].Addr()})
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := len(late.Endpoints("service-with-a-fairly-long-name-07", spmesh.RoleWorker)); got != 1 {
			return fmt.Errorf("late joiner sees %d endpoints of service 07, want 1", got)
		}
		return nil
	})
}

func TestEncryptionAndLabel(t *testing.T) {
	k1 := []byte("0123456789abcdef")
	k2 := []byte("fedcba9876543210")
	withKey := func(k []byte, label string) func(*discovery.Config) {
		return func(c *discovery.Config) { c.SecretKey, c.Label = k, label }
	}
	a := newNode(t, "a", nil, withKey(k1, "blue"))
	b := newNode(t, "b", []string{a.Addr()}, withKey(k1, "blue"))
	converged(t, []*discovery.Node{a, b}, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		mod  func(*discovery.Config)
	}{
		{"wrong key", withKey(k2, "blue")},
		{"no key", withKey(nil, "blue")},
		{"other label", withKey(k1, "green")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newNode(t, "c-"+strings.ReplaceAll(tc.name, " ", "-"), nil, tc.mod)
			if k, err := c.Join(ctx, a.Addr()); err == nil {
				t.Fatalf("join: got %d answered, want an error", k)
			}
			if got := len(c.Members()); got != 1 {
				t.Fatalf("outsider sees %d members, want 1", got)
			}
			if got := names(a.Members()); !slices.Equal(got, []string{"a", "b"}) {
				t.Fatalf("mesh members: got %v, want [a b]", got)
			}
		})
	}
	// Key rotation: install k2 everywhere, use it, remove k1.
	for _, n := range []*discovery.Node{a, b} {
		if err := n.InstallKey(k2); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*discovery.Node{a, b} {
		if err := n.UseKey(k2); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*discovery.Node{a, b} {
		if err := n.RemoveKey(k1); err != nil {
			t.Fatal(err)
		}
		if got := n.Keys(); len(got) != 1 || string(got[0]) != string(k2) {
			t.Fatalf("keys after rotation: got %q, want [k2]", got)
		}
	}
	d := newNode(t, "d", nil, withKey(k2, "blue"))
	if _, err := d.Join(ctx, a.Addr()); err != nil {
		t.Fatalf("join with the rotated key: got %v, want nil", err)
	}
	converged(t, []*discovery.Node{a, b, d}, 3)
	if err := d.InstallKey([]byte("short")); !errors.Is(err, spmesh.ErrInvalidOption) {
		t.Fatalf("short key: got %v, want ErrInvalidOption", err)
	}
	plain := newNode(t, "plain", nil)
	if err := plain.InstallKey(k1); !errors.Is(err, spmesh.ErrInvalidOption) {
		t.Fatalf("key on a node without encryption: got %v, want ErrInvalidOption", err)
	}
}

func TestCloseAndLeave(t *testing.T) {
	nodes := mesh(t, 2)
	converged(t, nodes, 2)
	n := nodes[1]
	ch, stop, err := n.Watch("x", spmesh.RolePublisher)
	if err != nil {
		t.Fatal(err)
	}
	next(t, ch)
	events := n.Events()
	var wg sync.WaitGroup
	for range 4 { // concurrent Close and Leave never panic
		wg.Go(func() { n.Close() })
		wg.Go(func() { n.Leave(context.Background()) })
	}
	wg.Wait()
	if _, ok := <-ch; ok {
		t.Fatal("watch after Close: got an open channel, want closed")
	}
	stop()
	for range events {
	}
	if _, err := n.Advertise(ep("x", spmesh.RolePublisher, "tcp://1.2.3.4:5")); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Advertise after Close: got %v, want ErrClosed", err)
	}
	if _, _, err := n.Watch("x", spmesh.RolePublisher); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Watch after Close: got %v, want ErrClosed", err)
	}
	if err := n.Leave(context.Background()); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Leave after Close: got %v, want ErrClosed", err)
	}
	if _, err := n.Join(context.Background(), nodes[0].Addr()); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Join after Close: got %v, want ErrClosed", err)
	}
	if got := n.Members(); got != nil {
		t.Fatalf("Members after Close: got %v, want nil", got)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: got %v, want nil", err)
	}
}

func TestEvents(t *testing.T) {
	a := newNode(t, "a", nil)
	b := newNode(t, "b", []string{a.Addr()})
	want := func(typ discovery.EventType, node string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case ev := <-a.Events():
				t.Logf("event %v %s", ev.Type, ev.Node)
				if ev.Type == typ && ev.Node == node {
					return
				}
			case <-timeout:
				t.Fatalf("got no %v event for %s within 10s, want one", typ, node)
			}
		}
	}
	want(discovery.EventJoin, "b")
	wd, err := b.Advertise(ep("svc", spmesh.RoleReplier, "tcp://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	want(discovery.EventServiceAdded, "b")
	wd()
	want(discovery.EventServiceRemoved, "b")
	if err := b.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	want(discovery.EventLeave, "b")
}

func TestConfigErrors(t *testing.T) {
	for name, mod := range map[string]func(*discovery.Config){
		"bad port":       func(c *discovery.Config) { c.BindPort = 70000 },
		"bad bind":       func(c *discovery.Config) { c.BindAddr = "not-an-ip" },
		"short key":      func(c *discovery.Config) { c.SecretKey = []byte("abc") },
		"long label":     func(c *discovery.Config) { c.Label = strings.Repeat("x", 256) },
		"probe timeout":  func(c *discovery.Config) { c.ProbeTimeout = 2 * c.ProbeInterval },
		"empty seed":     func(c *discovery.Config) { c.Seeds = []string{" "} },
		"zero rejoin":    func(c *discovery.Config) { c.RejoinInterval = 0 },
		"extra, no main": func(c *discovery.Config) { c.ExtraKeys = [][]byte{[]byte("0123456789abcdef")} },
	} {
		c := discovery.LocalConfig()
		mod(&c)
		if n, err := discovery.New(c); !errors.Is(err, spmesh.ErrInvalidOption) {
			if n != nil {
				n.Close()
			}
			t.Errorf("%s: got %v, want ErrInvalidOption", name, err)
		}
	}
	n1 := discovery.DefaultName()
	n2 := discovery.DefaultName()
	if n1 == n2 || !strings.Contains(n1, "-") {
		t.Fatalf("default names: got %q and %q, want distinct host-suffix names", n1, n2)
	}
}

// TestSeedRetried: a node whose seed is not up yet joins it once it is.
func TestSeedRetried(t *testing.T) {
	port := freePort(t)
	logs := &logRecorder{}
	b := newNode(t, "b", []string{fmt.Sprintf("127.0.0.1:%d", port)}, func(c *discovery.Config) { c.Logger = slog.New(logs) })
	testutil.Eventually(t, 10*time.Second, func() error {
		if !logs.has("retrying in the background") {
			return errors.New("no log of a failed first join yet")
		}
		return nil
	})
	if got := len(b.Members()); got != 1 {
		t.Fatalf("members before the seed starts: got %d, want 1", got)
	}
	a := newNode(t, "a", nil, func(c *discovery.Config) { c.BindPort = port })
	converged(t, []*discovery.Node{a, b}, 2)
}

// logRecorder is a slog handler keeping the messages.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}

func (l *logRecorder) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.msgs, func(m string) bool { return strings.Contains(m, sub) })
}

// freePort returns a port free for TCP and UDP on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	n, err := discovery.New(discovery.LocalConfig())
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := strings.Cut(n.Addr(), ":")
	n.Close()
	var port int
	fmt.Sscan(p, &port)
	return port
}

// TestRestartSameName: a node killed (closed without leaving) and started
// again under the same name on another port is accepted by the mesh.
func TestRestartSameName(t *testing.T) {
	fast := func(c *discovery.Config) {
		c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult = 100*time.Millisecond, 50*time.Millisecond, 2
		c.ReclaimAfter, c.RejoinInterval = 100*time.Millisecond, 100*time.Millisecond
	}
	a := newNode(t, "a", nil, fast)
	b := newNode(t, "b", []string{a.Addr()}, fast)
	if _, err := b.Advertise(ep("svc", spmesh.RolePublisher, "tcp://127.0.0.1:1")); err != nil {
		t.Fatal(err)
	}
	converged(t, []*discovery.Node{a, b}, 2)
	old := b.Addr()
	b.Close()
	converged(t, []*discovery.Node{a}, 1)
	b2 := newNode(t, "b", []string{a.Addr()}, fast)
	if _, err := b2.Advertise(ep("svc", spmesh.RolePublisher, "tcp://127.0.0.1:2")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, m := range a.Members() {
			if m.Name == "b" && m.Addr == b2.Addr() && len(m.Endpoints) == 1 && m.Endpoints[0].Addr == "tcp://127.0.0.1:2" {
				return nil
			}
		}
		return fmt.Errorf("a sees %+v, want b at %s (was %s) with its new endpoint", a.Members(), b2.Addr(), old)
	})
}

// TestEventsDropped: nobody reads events; the node counts the drops and
// goes on.
func TestEventsDropped(t *testing.T) {
	n := newNode(t, "a", nil, func(c *discovery.Config) { c.EventBuffer = 1 })
	for i := range 5 {
		if _, err := n.Advertise(ep(fmt.Sprint("svc", i), spmesh.RolePublisher, "tcp://127.0.0.1:1")); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.DroppedEvents(); got != 4 {
		t.Fatalf("dropped events: got %d, want 4", got)
	}
	if got := len(n.Endpoints("svc3", "")); got != 1 {
		t.Fatalf("endpoints of svc3: got %d, want 1", got)
	}
}

// TestPatternsWiredByName: req/rep and push/pull sockets on different nodes
// find each other by service name only; a replier whose node leaves is
// unwired and requests go to the one left.
func TestPatternsWiredByName(t *testing.T) {
	nodes := mesh(t, 3)
	converged(t, nodes, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, n := range nodes[1:] {
		name := fmt.Sprint("rep", i+1)
		r, err := reqrep.NewReplier(reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
			return name, nil
		}), reqrep.WithDiscovery(n, "thumbs"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
	}
	req, err := reqrep.NewRequester(reqrep.WithDiscovery(nodes[0], "thumbs"), reqrep.WithWaitForReplier(),
		reqrep.WithAttemptTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer req.Close()
	seen := map[string]bool{}
	testutil.Eventually(t, 20*time.Second, func() error {
		// Concurrent requests spread over the repliers (mangos REQ gives
		// sequential ones to whichever answered last).
		who := make([]string, 8)
		errs := make([]error, 8)
		var wg sync.WaitGroup
		for i := range who {
			wg.Go(func() { errs[i] = req.Request(ctx, "who", &who[i]) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		for _, w := range who {
			seen[w] = true
		}
		if len(seen) != 2 {
			return fmt.Errorf("repliers answered: got %v, want rep1 and rep2", seen)
		}
		return nil
	})

	pl, err := pipeline.NewPuller(pipeline.WithDiscovery(nodes[2], "jobs"))
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	pu, err := pipeline.NewPusher(pipeline.WithDiscovery(nodes[0], "jobs"))
	if err != nil {
		t.Fatal(err)
	}
	defer pu.Close()
	if err := pu.Push(ctx, 7); err != nil {
		t.Fatal(err)
	}
	m, err := pl.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := spmesh.Decode[int](m); err != nil || v != 7 {
		t.Fatalf("pulled: got %v, %v, want 7", v, err)
	}

	if err := nodes[1].Leave(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := len(nodes[0].Endpoints("thumbs", spmesh.RoleReplier)); got != 1 {
			return fmt.Errorf("repliers known to n0: got %d, want 1", got)
		}
		// rep1 still runs: only the hang-up stops requests reaching it.
		if got := req.Stats().Peers; got != 1 {
			return fmt.Errorf("requester connections: got %d, want 1", got)
		}
		return nil
	})
	for range 10 {
		var who string
		if err := req.Request(ctx, "who", &who); err != nil || who != "rep2" {
			t.Fatalf("after rep1's node left: got %q, %v, want rep2", who, err)
		}
	}
}
