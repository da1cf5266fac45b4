package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/metrics"
	"github.com/spmesh/spmesh/pipeline"
	"github.com/spmesh/spmesh/pubsub"
)

// statsNode is a mesh node of the test process with a collector and a
// stats responder, closed at the end of the test.
func statsNode(t *testing.T, name, seed string) (*discovery.Node, *metrics.Collector) {
	t.Helper()
	cfg := discovery.LocalConfig()
	cfg.Name, cfg.Seeds = name, []string{seed}
	n, err := discovery.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := metrics.NewCollector()
	r, err := metrics.ServeMesh(n, c)
	if err != nil {
		n.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		n.Close()
	})
	return n, c
}

// pubSubPair wires a publisher of service on a and a subscriber on b, each
// added to its node's collector, and waits until they are connected.
func pubSubPair(t *testing.T, service string, a, b *discovery.Node, ca, cb *metrics.Collector) (*pubsub.Publisher, *pubsub.Subscriber) {
	t.Helper()
	pub, err := pubsub.NewPublisher(pubsub.WithDiscovery(a, service))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	sub, err := pubsub.NewSubscriber(pubsub.WithDiscovery(b, service), pubsub.WithSubscribe("t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	if err := ca.Add(service, "publisher", pub); err != nil {
		t.Fatal(err)
	}
	if err := cb.Add(service, "subscriber", sub); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitReady)
	defer cancel()
	if err := pub.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	return pub, sub
}

// TestStatsExact: spmesh stats reports exact counts after known traffic.
func TestStatsExact(t *testing.T) {
	t.Parallel()
	const n = 100
	_, addr := seed(t)
	a, ca := statsNode(t, "stats-a", addr)
	b, cb := statsNode(t, "stats-b", addr)
	pub, sub := pubSubPair(t, "prices", a, b, ca, cb)
	ctx, cancel := context.WithTimeout(context.Background(), waitReady)
	defer cancel()
	for i := range n {
		if err := pub.Publish(ctx, "t", i); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if _, err := sub.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}

	r := mustRun(t, 0, "", "stats", "prices", "-j", addr, "--wait", "20s", "--timeout", "10s", "--json")
	var ms metrics.MeshStats
	if err := json.Unmarshal([]byte(r.stdout), &ms); err != nil {
		t.Fatalf("stats --json printed %q: %v", r.stdout, err)
	}
	if len(ms.Nodes) != 2 || ms.Nodes[0].Node != "stats-a" || ms.Nodes[1].Node != "stats-b" || len(ms.Missing) != 0 {
		t.Fatalf("got %+v, want stats-a and stats-b\n%s", ms, r)
	}
	ps, ss := ms.Nodes[0].Sockets, ms.Nodes[1].Sockets
	if len(ps) != 1 || len(ss) != 1 || ps[0].Role != "publisher" || ss[0].Role != "subscriber" {
		t.Fatalf("got sockets %+v and %+v, want a publisher and a subscriber of prices", ps, ss)
	}
	if got := ps[0].Value("messages_sent_total"); got != n {
		t.Errorf("publisher sent: got %v, want %d", got, n)
	}
	if got := ss[0].Value("messages_received_total"); got != n {
		t.Errorf("subscriber received: got %v, want %d", got, n)
	}
	if got := ss[0].Value("dropped_total"); got != 0 {
		t.Errorf("subscriber dropped: got %v, want 0", got)
	}
	if got := ms.Nodes[0].Members.Alive; got < 3 {
		t.Errorf("stats-a members alive: got %d, want at least 3 (seed, a, b)", got)
	}

	// The table: one line per socket with the same figures.
	r = mustRun(t, 0, "", "stats", "prices", "-j", addr, "--wait", "20s", "--timeout", "10s")
	for _, w := range []string{
		`(?m)^stats-a\s+prices\s+publisher\s+100\s+0\s+0\s+1\s+-\s`,
		`(?m)^stats-b\s+prices\s+subscriber\s+0\s+100\s+0\s+1\s+-\s`,
	} {
		if !regexp.MustCompile(w).MatchString(r.stdout) {
			t.Errorf("got\n%s\nwant a line matching %s", r.stdout, w)
		}
	}
	mustRun(t, exitNoService, "", "stats", "nothing", "-j", addr, "--wait", "20s", "--timeout", "10s")
}

// TestTopOnce: spmesh top --once --json against a mesh under traffic
// returns every node and service with non-zero rates.
func TestTopOnce(t *testing.T) {
	t.Parallel()
	agent := start(t, "agent", "--bind", "127.0.0.1:0", "--name", "top-agent")
	addr := agent.waitLine(agent.stdout, `^top-agent (127\.0\.0\.1:\d+)$`, waitReady)[1]
	a, ca := statsNode(t, "top-a", addr)
	b, cb := statsNode(t, "top-b", addr)
	pub1, sub1 := pubSubPair(t, "prices", a, b, ca, cb)
	pub2, sub2 := pubSubPair(t, "quotes", b, a, cb, ca)

	// Traffic until the end of the test, paced (a publisher outrunning its
	// subscriber drops: rates still, but drops are not what this tests).
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, p := range []struct {
		pub *pubsub.Publisher
		sub *pubsub.Subscriber
	}{{pub1, sub1}, {pub2, sub2}} {
		wg.Go(func() {
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if p.pub.Publish(ctx, "t", i) != nil {
					return
				}
			}
		})
		wg.Go(func() {
			for {
				if _, err := p.sub.Next(ctx); err != nil {
					return
				}
			}
		})
	}

	r := mustRun(t, 0, "", "top", "--once", "--json", "-j", addr, "--wait", "20s", "--timeout", "10s", "--interval", "1s")
	var sample topSample
	if err := json.Unmarshal([]byte(r.stdout), &sample); err != nil {
		t.Fatalf("top --json printed %q: %v", r.stdout, err)
	}
	if sample.Interval <= 0 {
		t.Errorf("got interval %v, want > 0", sample.Interval)
	}
	got := map[string]bool{}
	for _, n := range sample.Nodes {
		got[n.Node] = true
		for _, s := range n.Sockets {
			key := n.Node + "/" + s.Service + "/" + s.Role
			got[key] = true
			rate := s.Sent
			if s.Role == "subscriber" {
				rate = s.Received
			}
			if rate <= 0 {
				t.Errorf("%s: got rate %v, want > 0\n%s", key, rate, r)
			}
		}
	}
	for _, w := range []string{"top-agent", "top-a", "top-b",
		"top-a/prices/publisher", "top-b/prices/subscriber", "top-b/quotes/publisher", "top-a/quotes/subscriber"} {
		if !got[w] {
			t.Errorf("%s missing from top's sample\n%s", w, r)
		}
	}

	// The text form: a table row per socket.
	r = mustRun(t, 0, "", "top", "--once", "-j", addr, "--wait", "20s", "--timeout", "10s", "--interval", "500ms")
	if w := `(?m)^top-a\s+prices\s+publisher\s+1\s+[0-9.]+\s`; !regexp.MustCompile(w).MatchString(r.stdout) {
		t.Errorf("got\n%s\nwant a line matching %s", r.stdout, w)
	}
}

// TestAgentHTTP: the agent's /metrics, /healthz, /members and /services
// over HTTP.
func TestAgentHTTP(t *testing.T) {
	t.Parallel()
	agent := start(t, "agent", "--bind", "127.0.0.1:0", "--name", "http-agent", "--http", "127.0.0.1:0")
	addr := agent.waitLine(agent.stdout, `^http-agent (127\.0\.0\.1:\d+)$`, waitReady)[1]
	web := "http://" + agent.waitLine(agent.stdout, `^http (127\.0\.0\.1:\d+)$`, waitReady)[1]
	a, ca := statsNode(t, "http-a", addr)
	b, cb := statsNode(t, "http-b", addr)
	pubSubPair(t, "prices", a, b, ca, cb)

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(web + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: got %d %q, want 200 ok", code, body)
	}
	// The agent sees three members alive (itself, a, b) once gossip has
	// told it; then the scrape shows them.
	var metricsText string
	testutil.Eventually(t, waitReady, func() error {
		code, body := get("/metrics")
		if code != 200 {
			return fmt.Errorf("/metrics: got %d, want 200\n%s", code, body)
		}
		metricsText = body
		if v, ok := sample(body, `spmesh_discovery_members{node="http-agent",state="alive"}`); !ok || v != 3 {
			return fmt.Errorf("/metrics: got members alive %v (present %v), want 3\n%s", v, ok, body)
		}
		return nil
	})
	for _, name := range []string{
		`spmesh_discovery_pull_errors_total{node="http-agent"}`,
		`spmesh_discovery_members{node="http-agent",state="failed"}`,
		`go_goroutines`,
	} {
		if _, ok := sample(metricsText, name); !ok {
			t.Errorf("/metrics: %s missing", name)
		}
	}

	code, body := get("/members")
	var ms []struct{ Name, State string }
	if err := json.Unmarshal([]byte(body), &ms); code != 200 || err != nil {
		t.Fatalf("/members: got %d %q (%v), want 200 and JSON", code, body, err)
	}
	names := map[string]bool{}
	for _, m := range ms {
		names[m.Name] = true
	}
	for _, n := range []string{"http-agent", "http-a", "http-b"} {
		if !names[n] {
			t.Errorf("/members: got %s, want %s listed", body, n)
		}
	}
	var svcs []struct {
		Service   string
		Endpoints []struct{ Role, Node string }
	}
	testutil.Eventually(t, waitReady, func() error {
		code, body := get("/services")
		if err := json.Unmarshal([]byte(body), &svcs); code != 200 || err != nil {
			return fmt.Errorf("/services: got %d %q (%v), want 200 and JSON", code, body, err)
		}
		if len(svcs) != 1 || svcs[0].Service != "prices" || len(svcs[0].Endpoints) != 1 || svcs[0].Endpoints[0].Node != "http-a" {
			return fmt.Errorf("/services: got %s, want prices served by http-a (and no _spmesh. service)", body)
		}
		return nil
	})
	if code, _ := get("/nothing"); code != http.StatusNotFound {
		t.Errorf("/nothing: got %d, want 404", code)
	}
}

// sample finds the value of a series in a Prometheus text exposition.
func sample(text, series string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// TestRates: rates between two surveys, per node over its own interval; a
// node or socket in one survey only has none; a counter that went down (a
// socket replaced) counts from zero.
func TestRates(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sock := func(service string, sent, recv, dropped float64, peers ...metrics.PeerSnapshot) metrics.SocketSnapshot {
		return metrics.SocketSnapshot{Service: service, Role: "r", Peers: peers, Values: map[string]float64{
			"messages_sent_total": sent, "messages_received_total": recv, "dropped_total": dropped, "peers": 1, "in_flight": 2}}
	}
	prev := &metrics.MeshStats{Nodes: []metrics.Snapshot{
		{Node: "a", Time: t0, Sockets: []metrics.SocketSnapshot{sock("s", 100, 10, 0), sock("gone", 1, 1, 1)}},
		{Node: "b", Time: t0, Sockets: []metrics.SocketSnapshot{sock("s", 50, 0, 0)}},
		{Node: "left", Time: t0},
	}}
	cur := &metrics.MeshStats{Nodes: []metrics.Snapshot{
		{Node: "a", Time: t0.Add(2 * time.Second), Sockets: []metrics.SocketSnapshot{sock("s", 300, 30, 4), sock("new", 5, 5, 5)}},
		{Node: "b", Time: t0.Add(4 * time.Second), Sockets: []metrics.SocketSnapshot{sock("s", 20, 0, 0,
			metrics.PeerSnapshot{Addr: "p1", Done: 5, MeanReplySeconds: 0.010},
			metrics.PeerSnapshot{Addr: "p2", Done: 5, MeanReplySeconds: 0.012},
			metrics.PeerSnapshot{Addr: "p3", Done: 5, MeanReplySeconds: 0.050},
			metrics.PeerSnapshot{Addr: "p4", Done: 0, MeanReplySeconds: 0})}},
		{Node: "new", Time: t0.Add(time.Second)},
	}}
	got := rates(prev, cur, t0)
	if len(got.Nodes) != 2 || got.Interval != 4 || len(got.Missing) != 1 || got.Missing[0] != "left" {
		t.Fatalf("got %+v, want nodes a and b, interval 4, left missing", got)
	}
	a, b := got.Nodes[0], got.Nodes[1]
	if len(a.Sockets) != 1 || a.Sockets[0].Sent != 100 || a.Sockets[0].Received != 10 || a.Sockets[0].Dropped != 2 ||
		a.Sockets[0].InFlight == nil || *a.Sockets[0].InFlight != 2 {
		t.Errorf("a: got %+v, want socket s only: sent 100/s, received 10/s, dropped 2/s, in flight 2", a.Sockets)
	}
	if len(b.Sockets) != 1 || b.Sockets[0].Sent != 5 {
		t.Errorf("b: got %+v, want sent 5/s (20 after a restart, over 4 s)", b.Sockets)
	}
	if slow := b.Sockets[0].SlowPeers; len(slow) != 1 || slow[0].Addr != "p3" {
		t.Errorf("slow peers: got %+v, want p3 only (50ms against a median of 12ms)", slow)
	}
}

// TestTopSlowPeer: a producer with a fast and a slow worker; top flags the
// slow one among the producer's peers.
//
// A peer's mean reply time is its mean since it connected, so one late
// reply (the process starved for a moment on a loaded machine) weighs on
// it by how few replies it has. Produced one at a time, jobs alternated
// between the two workers (the one with the fewest in flight, ties round
// robin): the fast one had 5 or 6 replies when top looked, and a single
// one 750 ms late would have made it half as slow as the slow one, which
// top then did not flag. With four jobs in flight the slow worker holds
// about two (its concurrency) and the fast one takes the rest; top looks
// once the fast one has 100 replies. Its 5 ms of work keeps it from
// spinning a core for the whole test.
func TestTopSlowPeer(t *testing.T) {
	t.Parallel()
	_, addr := seed(t)
	a, ca := statsNode(t, "slow-a", addr)
	worker := func(name string, work time.Duration) string {
		n, c := statsNode(t, name, addr)
		w, err := pipeline.NewWorker(pipeline.HandlerFunc(func(ctx context.Context, _ *pipeline.Job) error {
			select { // simulated work
			case <-time.After(work):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}), pipeline.WithDiscovery(n, "jobs"), pipeline.WithConcurrency(2))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		if err := c.Add("jobs", "worker", w); err != nil {
			t.Fatal(err)
		}
		_, hostPort, _ := strings.Cut(w.Addrs()[0], "://")
		return hostPort
	}
	worker("slow-fast", 5*time.Millisecond)
	slowAddr := worker("slow-slow", 300*time.Millisecond)
	p, err := pipeline.NewProducer(pipeline.WithDiscovery(a, "jobs"), pipeline.WithMaxInFlight(8))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := ca.Add("jobs", "producer", p); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wctx, wcancel := context.WithTimeout(ctx, waitReady)
	defer wcancel()
	if err := p.WaitPeers(wctx, 2); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				if err := p.Produce(ctx, i); err != nil {
					return
				}
			}
		})
	}
	// Both workers have replied, the fast one many times, before top looks.
	testutil.Eventually(t, waitReady, func() error {
		ps := p.Stats().PerPeer
		if len(ps) != 2 || min(ps[0].Done, ps[1].Done) == 0 || max(ps[0].Done, ps[1].Done) < 100 {
			return fmt.Errorf("got peers %+v, want two that replied, one 100 times", ps)
		}
		return nil
	})

	r := mustRun(t, 0, "", "top", "jobs", "--once", "--json", "-j", addr, "--wait", "20s", "--timeout", "10s", "--interval", "1s")
	var sample topSample
	if err := json.Unmarshal([]byte(r.stdout), &sample); err != nil {
		t.Fatalf("top --json printed %q: %v", r.stdout, err)
	}
	var found bool
	for _, n := range sample.Nodes {
		for _, s := range n.Sockets {
			if n.Node != "slow-a" || s.Role != "producer" {
				if len(s.SlowPeers) > 0 {
					t.Errorf("%s %s: got slow peers %+v, want none", n.Node, s.Role, s.SlowPeers)
				}
				continue
			}
			found = true
			if len(s.SlowPeers) != 1 || s.SlowPeers[0].Addr != slowAddr {
				t.Errorf("producer: got slow peers %+v, want the slow worker at %s only (peers: %+v)\n%s", s.SlowPeers, slowAddr, p.Stats().PerPeer, r)
			}
		}
	}
	if !found {
		t.Fatalf("no producer of slow-a in top's sample\n%s", r)
	}
}

// TestTopRunsUntilInterrupted: top prints a sample every interval (one
// after the other when stdout is not a terminal) until SIGINT, then exits 0.
func TestTopRunsUntilInterrupted(t *testing.T) {
	t.Parallel()
	_, addr := seed(t)
	statsNode(t, "loop-a", addr)
	top := start(t, "top", "-j", addr, "--wait", "20s", "--interval", "200ms")
	// Two samples: the second header comes after the first sample's rows.
	testutil.Eventually(t, waitReady, func() error {
		if n := strings.Count(top.stdout.String(), "spmesh top "); n < 2 {
			return fmt.Errorf("got %d samples, want 2\n%s", n, top)
		}
		return nil
	})
	if !regexp.MustCompile(`(?m)^loop-a\s+3\s+0\s+0\s+0$`).MatchString(top.stdout.String()) {
		t.Errorf("got\n%s\nwant loop-a with 3 members alive (seed, itself, top)", top.stdout)
	}
	top.signal(syscall.SIGINT)
	if code := top.wait(waitReady); code != 0 {
		t.Fatalf("got exit %d after SIGINT, want 0\n%s", code, top)
	}
}
