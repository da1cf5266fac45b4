package metrics_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/metrics"
	"github.com/spmesh/spmesh/pubsub"
	"github.com/spmesh/spmesh/survey"
)

func node(t *testing.T, name string, seeds ...string) *discovery.Node {
	t.Helper()
	cfg := discovery.LocalConfig()
	cfg.Name, cfg.Seeds = name, seeds
	n, err := discovery.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestServeMesh: two nodes, a publisher on one and a subscriber on the
// other, each wired through its own collector and stats responder; a third
// node surveys them and gets exact counts.
func TestServeMesh(t *testing.T) {
	const n = 50
	a := node(t, "a")
	b := node(t, "b", a.Addr())
	q := node(t, "q", a.Addr())

	pub, err := pubsub.NewPublisher(pubsub.WithDiscovery(a, "prices"))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := pubsub.NewSubscriber(pubsub.WithDiscovery(b, "prices"), pubsub.WithSubscribe("p"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ca, cb := metrics.NewCollector(), metrics.NewCollector()
	if err := ca.Add("prices", "publisher", pub); err != nil {
		t.Fatal(err)
	}
	if err := cb.Add("prices", "subscriber", sub); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		n *discovery.Node
		c *metrics.Collector
	}{{a, ca}, {b, cb}} {
		r, err := metrics.ServeMesh(x.n, x.c)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pub.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := pub.Publish(ctx, "p", i); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if _, err := sub.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}

	sv, err := survey.NewSurveyor(survey.WithDiscovery(q, metrics.StatsService))
	if err != nil {
		t.Fatal(err)
	}
	defer sv.Close()
	if err := sv.WaitPeers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	var ms *metrics.MeshStats
	testutil.Eventually(t, 30*time.Second, func() error {
		ms, err = metrics.QueryMesh(ctx, sv, "", survey.WithExpect("a", "b"), survey.WithTimeout(5*time.Second))
		if err != nil {
			return err
		}
		if len(ms.Nodes) != 2 || len(ms.Missing) != 0 || len(ms.Errors) != 0 {
			return fmt.Errorf("got %+v, want answers from a and b", ms)
		}
		for _, s := range ms.Nodes {
			if s.Members.Alive != 3 {
				return fmt.Errorf("%s: got %d members alive, want 3", s.Node, s.Members.Alive)
			}
		}
		return nil
	})
	na, nb := ms.Nodes[0], ms.Nodes[1]
	if na.Node != "a" || nb.Node != "b" || len(na.Sockets) != 1 || len(nb.Sockets) != 1 {
		t.Fatalf("got %+v, want a with one socket, b with one", ms)
	}
	ps, ss := na.Sockets[0], nb.Sockets[0]
	if ps.Service != "prices" || ps.Role != "publisher" || ss.Role != "subscriber" {
		t.Fatalf("got sockets %+v and %+v, want prices publisher and subscriber", ps, ss)
	}
	if got := ps.Value("messages_sent_total"); got != n {
		t.Errorf("publisher sent: got %v, want %d", got, n)
	}
	if got := ss.Value("messages_received_total"); got != n {
		t.Errorf("subscriber received: got %v, want %d", got, n)
	}
	if got := ss.Value("dropped_total") + ss.Value("dropped_gap_total"); got != 0 {
		t.Errorf("subscriber dropped and gaps: got %v, want 0", got)
	}
	if _, ok := na.Discovery["pull_errors_total"]; !ok {
		t.Errorf("discovery figures: got %v, want pull_errors_total among them", na.Discovery)
	}

	// A question that is not a StatsQuery gets an error answer.
	res, err := sv.Survey(ctx, []int{1, 2, 3}, survey.WithExpect("a", "b"), survey.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	errs := 0
	for r, err := range res.All(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if r.Err == nil {
			t.Errorf("answer from %s to a bad question: got no error, want one", r.From)
		}
		errs++
	}
	res.Close()
	if errs != 2 {
		t.Errorf("bad question: got %d error answers, want 2", errs)
	}

	// Filtered by service: the node figures stay, the sockets go.
	ms, err = metrics.QueryMesh(ctx, sv, "nothing", survey.WithExpect("a", "b"), survey.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms.Nodes) != 2 || len(ms.Nodes[0].Sockets)+len(ms.Nodes[1].Sockets) != 0 {
		t.Fatalf("got %+v, want two nodes and no sockets", ms)
	}
}

// TestSnapshotBounds: past MaxSnapshotSockets the sockets are counted, not
// listed.
func TestSnapshotBounds(t *testing.T) {
	c := metrics.NewCollector()
	p, err := pubsub.NewPublisher()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range metrics.MaxSnapshotSockets + 3 {
		if err := c.Add(fmt.Sprintf("s%03d", i), "publisher", p); err != nil {
			t.Fatal(err)
		}
	}
	socks, omitted := c.Snapshot("")
	if len(socks) != metrics.MaxSnapshotSockets || omitted != 3 {
		t.Fatalf("got %d sockets, %d omitted; want %d and 3", len(socks), omitted, metrics.MaxSnapshotSockets)
	}
	if socks[0].Service != "s000" {
		t.Fatalf("got first %q, want s000 (sorted)", socks[0].Service)
	}
	if socks, omitted := c.Snapshot("s007"); len(socks) != 1 || omitted != 0 {
		t.Fatalf("Snapshot(s007): got %d sockets, %d omitted; want 1 and 0", len(socks), omitted)
	}
}

// TestNodeMembersScrape: a discovery node's member counts are exported.
func TestNodeMembersScrape(t *testing.T) {
	a := node(t, "a")
	node(t, "b", a.Addr())
	c := metrics.NewCollector()
	if err := c.AddNode(a); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, c)
	testutil.Eventually(t, 30*time.Second, func() error {
		if got := a.MemberCounts().Alive; got != 2 {
			return fmt.Errorf("a: %d members alive, want 2", got)
		}
		return nil
	})
	got := scrape(t, srv)
	want(t, got, `spmesh_discovery_members{node="a",state="alive"}`, 2)
	want(t, got, `spmesh_discovery_members{node="a",state="failed"}`, 0)
}

// TestSnapshotFitsMessage: a Snapshot at its caps, with long names and
// addresses, encodes well under MaxStatsMessage.
func TestSnapshotFitsMessage(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	snap := metrics.Snapshot{Node: long(128), Time: time.Now(), Discovery: map[string]uint64{}}
	for i := range 7 {
		snap.Discovery[fmt.Sprintf("%s_%d_total", long(24), i)] = 1 << 60
	}
	for i := range metrics.MaxSnapshotSockets {
		s := metrics.SocketSnapshot{Service: fmt.Sprintf("%s%d", long(256), i), Role: long(64), Values: map[string]float64{}}
		for j := range 40 { // more figures than any socket type has
			s.Values[fmt.Sprintf("%s_%d_total", long(24), j)] = 1.5e18
		}
		for j := range metrics.MaxSnapshotPeers {
			s.Peers = append(s.Peers, metrics.PeerSnapshot{Addr: fmt.Sprintf("[2001:db8::%d]:65535", j), InFlight: 1 << 20,
				Credit: 1 << 20, Done: 1 << 60, Failed: 1 << 60, MeanReplySeconds: 1.5})
		}
		snap.Sockets = append(snap.Sockets, s)
	}
	b, err := spmesh.Msgpack.Marshal(&snap)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a Snapshot at its caps: %d bytes (MaxStatsMessage %d)", len(b), metrics.MaxStatsMessage)
	if len(b) > metrics.MaxStatsMessage/2 {
		t.Fatalf("got %d bytes, want at most half of MaxStatsMessage (%d)", len(b), metrics.MaxStatsMessage)
	}
}

// TestHandler: Handler serves the collector with the Go and process
// figures.
func TestHandler(t *testing.T) {
	c := metrics.NewCollector()
	p, err := pubsub.NewPublisher()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := c.Add("prices", "publisher", p); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(metrics.Handler(c))
	defer srv.Close()
	got := scrape(t, srv)
	want(t, got, `spmesh_messages_sent_total{role="publisher",service="prices"}`, 0)
	if _, ok := got["go_goroutines"]; !ok {
		t.Error("go_goroutines: missing")
	}
}
