package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/metrics"
	"github.com/spmesh/spmesh/pubsub"
	"github.com/spmesh/spmesh/reqrep"
)

// scrape fetches the text exposition of srv and returns its samples,
// keyed by "name{labels}" as written.
func scrape(t *testing.T, srv *httptest.Server) map[string]float64 {
	t.Helper()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d: %s", resp.StatusCode, body)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape: line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func serve(t *testing.T, c prometheus.Collector) *httptest.Server {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	t.Cleanup(srv.Close)
	return srv
}

func want(t *testing.T, got map[string]float64, key string, v float64) {
	t.Helper()
	g, ok := got[key]
	if !ok {
		t.Errorf("%s: missing", key)
		return
	}
	if g != v {
		t.Errorf("%s: got %v, want %v", key, g, v)
	}
}

func TestPubSubScrape(t *testing.T) {
	const n = 100
	addr := testutil.FreeTCP(t)
	p, err := pubsub.NewPublisher(pubsub.WithListen(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := pubsub.NewSubscriber(pubsub.WithDial(addr), pubsub.WithSubscribe("img"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	c := metrics.NewCollector()
	if err := c.Add("images", "publisher", p); err != nil {
		t.Fatal(err)
	}
	if err := c.Add("images", "subscriber", s); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, c)

	testutil.Eventually(t, 5*time.Second, func() error {
		if a, b := p.Stats().Peers, s.Stats().Peers; a != 1 || b != 1 {
			return fmt.Errorf("peers: publisher %d, subscriber %d, want 1 and 1", a, b)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range n {
		if err := p.Publish(ctx, "img", i); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if _, err := s.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}

	got := scrape(t, srv)
	pub := `{role="publisher",service="images"}`
	sub := `{role="subscriber",service="images"}`
	want(t, got, "spmesh_messages_sent_total"+pub, n)
	want(t, got, "spmesh_messages_received_total"+sub, n)
	want(t, got, "spmesh_dropped_total"+sub, 0)
	want(t, got, "spmesh_dropped_gap_total"+sub, 0)
	want(t, got, "spmesh_decode_errors_total"+sub, 0)
	want(t, got, "spmesh_peers"+pub, 1)
	want(t, got, "spmesh_peers"+sub, 1)
	if sent, recv, drop := got["spmesh_messages_sent_total"+pub], got["spmesh_messages_received_total"+sub], got["spmesh_dropped_total"+sub]; sent != recv+drop {
		t.Errorf("sent %v != received %v + dropped %v", sent, recv, drop)
	}
	if _, ok := got["spmesh_in_flight"+pub]; ok {
		t.Errorf("spmesh_in_flight exported for a publisher, which has no such figure")
	}

	// Remove: the socket's series go.
	if !c.Remove("images", "subscriber") {
		t.Fatal("Remove: got false, want true")
	}
	if c.Remove("images", "subscriber") {
		t.Fatal("Remove twice: got true, want false")
	}
	got = scrape(t, srv)
	if _, ok := got["spmesh_messages_received_total"+sub]; ok {
		t.Error("removed subscriber still exported")
	}
	want(t, got, "spmesh_messages_sent_total"+pub, n)
}

func TestReqRepScrape(t *testing.T) {
	const n, fails = 20, 5
	addr := testutil.FreeTCP(t)
	rep, err := reqrep.NewReplier(reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		var i int
		if err := req.Decode(&i); err != nil {
			return nil, err
		}
		if i < fails {
			return nil, errors.New("refused")
		}
		return i, nil
	}), reqrep.WithListen(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	req, err := reqrep.NewRequester(reqrep.WithDial(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer req.Close()

	c := metrics.NewCollector()
	if err := c.Add("calc", "requester", req); err != nil {
		t.Fatal(err)
	}
	if err := c.Add("calc", "replier", rep); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, c)

	testutil.Eventually(t, 5*time.Second, func() error {
		if a, b := req.Stats().Peers, rep.Stats().Peers; a != 1 || b != 1 {
			return fmt.Errorf("peers: requester %d, replier %d, want 1 and 1", a, b)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range n {
		var out int
		err := req.Request(ctx, i, &out)
		var remote *spmesh.RemoteError
		if (i < fails) != errors.As(err, &remote) || (i >= fails && err != nil) {
			t.Fatalf("call %d: err %v", i, err)
		}
	}

	// The replier counts a reply once its send returns, which may be after
	// the requester has it.
	testutil.Eventually(t, 5*time.Second, func() error {
		if st := rep.Stats(); st.Sent != n || st.InFlight != 0 {
			return fmt.Errorf("replier: sent %d, in flight %d, want %d and 0", st.Sent, st.InFlight, n)
		}
		return nil
	})
	got := scrape(t, srv)
	rq := `{role="requester",service="calc"}`
	rp := `{role="replier",service="calc"}`
	want(t, got, "spmesh_messages_sent_total"+rq, n)
	want(t, got, "spmesh_messages_received_total"+rq, n)
	want(t, got, "spmesh_messages_received_total"+rp, n)
	want(t, got, "spmesh_messages_sent_total"+rp, n)
	want(t, got, "spmesh_retries_total"+rq, 0)
	want(t, got, "spmesh_remote_errors_total"+rq, fails)
	want(t, got, "spmesh_handler_errors_total"+rp, fails)
	want(t, got, "spmesh_in_flight"+rq, 0)
	want(t, got, "spmesh_in_flight"+rp, 0)
	want(t, got, "spmesh_draining"+rp, 0)
	want(t, got, "spmesh_peers"+rq, 1)
	want(t, got, "spmesh_peers"+rp, 1)
	// Bytes: what one side wrote, the other read (the replier counts its
	// bytes before Sent, waited for above).
	if st := req.Stats(); st.BytesSent == 0 || st.BytesReceived == 0 {
		t.Errorf("requester bytes: sent %d, received %d, want both > 0", st.BytesSent, st.BytesReceived)
	}
	want(t, got, "spmesh_sent_bytes_total"+rq, float64(req.Stats().BytesSent))
	want(t, got, "spmesh_received_bytes_total"+rp, got["spmesh_sent_bytes_total"+rq])
	want(t, got, "spmesh_sent_bytes_total"+rp, got["spmesh_received_bytes_total"+rq])
	// Reply times: one per call, the buckets cumulative up to +Inf.
	want(t, got, "spmesh_reply_seconds_count"+rq, n)
	want(t, got, `spmesh_reply_seconds_bucket{role="requester",service="calc",le="+Inf"}`, n)
	if b := got[`spmesh_reply_seconds_bucket{role="requester",service="calc",le="10"}`]; b > n {
		t.Errorf("bucket le=10: %v, more than the %d calls", b, n)
	}
	if sum := got["spmesh_reply_seconds_sum"+rq]; sum <= 0 {
		t.Errorf("spmesh_reply_seconds_sum: %v, want > 0", sum)
	}
	if _, ok := got["spmesh_reply_seconds_count"+rp]; ok {
		t.Error("replier exports spmesh_reply_seconds: it has no round trip")
	}
	// A Snapshot carries the same figures, the histogram as count and sum.
	socks, _ := c.Snapshot("calc")
	if len(socks) != 2 || socks[1].Role != "requester" {
		t.Fatalf("snapshot: %+v, want the replier and the requester", socks)
	}
	for _, ss := range socks[1:] {
		if v := ss.Value("reply_seconds_count"); v != n {
			t.Errorf("snapshot reply_seconds_count: %v, want %d", v, n)
		}
		if v := ss.Value("reply_seconds_sum"); v <= 0 {
			t.Errorf("snapshot reply_seconds_sum: %v", v)
		}
		if v := ss.Value("sent_bytes_total"); v != got["spmesh_sent_bytes_total"+rq] {
			t.Errorf("snapshot sent_bytes_total: %v, scraped %v", v, got["spmesh_sent_bytes_total"+rq])
		}
	}
	var peer string
	for k := range got {
		if strings.HasPrefix(k, "spmesh_peer_done_total{") {
			if peer != "" {
				t.Errorf("two peers: %s and %s", peer, k)
			}
			peer = k
		}
	}
	if peer == "" {
		t.Fatal("spmesh_peer_done_total: missing")
	}
	want(t, got, peer, n)

	if n := promtest.CollectAndCount(c, "spmesh_messages_sent_total"); n != 2 {
		t.Errorf("CollectAndCount: got %d, want 2", n)
	}
	problems, err := promtest.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestAddErrors(t *testing.T) {
	c := metrics.NewCollector()
	if err := c.Add("s", "r", 42); !errors.Is(err, metrics.ErrUnsupported) {
		t.Errorf("Add(int): got %v, want ErrUnsupported", err)
	}
	p, err := pubsub.NewPublisher()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := c.Add("s", "r", p); err != nil {
		t.Fatal(err)
	}
	if err := c.Add("s", "r", p); !errors.Is(err, metrics.ErrDuplicate) {
		t.Errorf("Add twice: got %v, want ErrDuplicate", err)
	}
}

type fakeNode struct{ st discovery.Stats }

func (fakeNode) Name() string             { return "n1" }
func (f fakeNode) Stats() discovery.Stats { return f.st }

func TestNode(t *testing.T) {
	c := metrics.NewCollector()
	if err := c.AddNode(fakeNode{discovery.Stats{EndpointsRefused: 3, GossipRefused: 2, PullErrors: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := c.AddNode(fakeNode{}); !errors.Is(err, metrics.ErrDuplicate) {
		t.Errorf("AddNode twice: got %v, want ErrDuplicate", err)
	}
	got := scrape(t, serve(t, c))
	want(t, got, `spmesh_discovery_endpoints_refused_total{node="n1"}`, 3)
	want(t, got, `spmesh_discovery_gossip_refused_total{node="n1"}`, 2)
	want(t, got, `spmesh_discovery_pull_errors_total{node="n1"}`, 1)
	problems, err := promtest.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if !c.RemoveNode("n1") {
		t.Error("RemoveNode: got false, want true")
	}
}

// TestCoreDoesNotImportPrometheus: only this package may depend on
// Prometheus; users of the patterns and discovery do not pay for it.
func TestCoreDoesNotImportPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	pkgs := []string{".", "./pubsub", "./reqrep", "./pipeline", "./survey", "./discovery"}
	cmd := exec.Command("go", append([]string{"list", "-deps"}, pkgs...)...)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "prometheus") {
			t.Errorf("a core package depends on %s", p)
		}
	}
}
