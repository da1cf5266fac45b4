package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/reqrep"
)

// testNode starts a loopback node joined to seeds, closed at cleanup.
func testNode(t *testing.T, name string, seeds []string, mod ...func(*Config)) *Node {
	t.Helper()
	c := LocalConfig()
	c.Name = name
	c.Seeds = seeds
	for _, m := range mod {
		m(&c)
	}
	n, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func waitMembers(t *testing.T, want int, nodes ...*Node) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, func() error {
		for _, n := range nodes {
			if got := len(n.Members()); got != want {
				return fmt.Errorf("%s sees %d members, want %d", n.Name(), got, want)
			}
		}
		return nil
	})
}

// recorder follows a Watch and keeps every endpoint ever reported.
type recorder struct {
	mu   sync.Mutex
	seen map[spmesh.Endpoint]bool
	last []spmesh.Endpoint
	wg   sync.WaitGroup
}

func record(t *testing.T, n *Node, service string, role spmesh.Role) *recorder {
	t.Helper()
	ch, stop, err := n.Watch(service, role)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{seen: map[spmesh.Endpoint]bool{}}
	r.wg.Go(func() {
		for eps := range ch {
			r.mu.Lock()
			for _, e := range eps {
				r.seen[e] = true
			}
			r.last = eps
			r.mu.Unlock()
		}
	})
	t.Cleanup(func() { stop(); r.wg.Wait() })
	return r
}

// ever returns every endpoint the watch ever reported.
func (r *recorder) ever() []spmesh.Endpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []spmesh.Endpoint
	for e := range r.seen {
		out = append(out, e)
	}
	sortEndpoints(out)
	return out
}

func (r *recorder) current() []spmesh.Endpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.last)
}

// TestRogueEndpointsRefused: a member advertising a cloud metadata address,
// a port on another host IP, a unix socket path, an in-process name, a
// host name, and 4,096 endpoints: the victim's watchers never see any of
// them (a requester wired through the victim never dials the decoy
// service listening on the other host IP), the counters show every
// refusal, and the rogue's legitimate endpoint is listed.
func TestRogueEndpointsRefused(t *testing.T) {
	decoy, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 on this host: %v", err)
	}
	var accepted atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := decoy.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	})
	defer func() { decoy.Close(); wg.Wait() }()

	victim := testNode(t, "victim", nil)
	rogue := testNode(t, "rogue", []string{victim.Addr()})
	flood := testNode(t, "flood", []string{victim.Addr()})
	waitMembers(t, 3, victim, rogue, flood)

	bad := []spmesh.Endpoint{
		{Service: "meta", Role: spmesh.RoleReplier, Addr: "tcp://169.254.169.254:80"},
		{Service: "meta", Role: spmesh.RoleReplier, Addr: "tcp://[fe80::1]:80"},
		{Service: "meta", Role: spmesh.RoleReplier, Addr: "tcp://[fd00:ec2::254]:80"},
		{Service: "other", Role: spmesh.RoleReplier, Addr: "tcp://" + decoy.Addr().String()},
		{Service: "unix", Role: spmesh.RoleReplier, Addr: "ipc:///tmp/spmesh-rogue.sock"},
		{Service: "inproc", Role: spmesh.RoleReplier, Addr: "inproc://evil"},
		{Service: "name", Role: spmesh.RoleReplier, Addr: "tcp://localhost:80"},
		{Service: "name", Role: spmesh.RoleReplier, Addr: "tcp://0.0.0.0:80"},
		{Service: "name", Role: spmesh.RoleReplier, Addr: "name:someone"},
	}
	rec := map[string]*recorder{}
	for _, svc := range []string{"meta", "other", "unix", "inproc", "name", "ok", "many"} {
		rec[svc] = record(t, victim, svc, spmesh.RoleReplier)
	}
	req, err := reqrep.NewRequester(reqrep.WithDiscovery(victim, "other"))
	if err != nil {
		t.Fatal(err)
	}
	defer req.Close()
	// The rogues serve these records (a member running modified code:
	// a well-behaved node never sends ipc:// or inproc:// endpoints).
	good := spmesh.Endpoint{Service: "ok", Role: spmesh.RoleReplier, Addr: "tcp://127.0.0.1:7001"}
	forge(rogue, "rogue", append(slices.Clone(bad), good))
	var many []spmesh.Endpoint
	for i := range MaxEndpoints {
		many = append(many, spmesh.Endpoint{Service: "many", Role: spmesh.RoleReplier, Addr: fmt.Sprintf("tcp://127.0.0.1:%d", 10000+i)})
	}
	forge(flood, "flood", many)
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := rec["ok"].current(); len(got) != 1 || got[0].Node != "rogue" {
			return fmt.Errorf("victim sees %v of service ok, want the rogue's one endpoint", got)
		}
		if got := len(rec["many"].current()); got != LocalConfig().MaxEndpointsPerMember {
			return fmt.Errorf("victim lists %d endpoints of the flood, want %d (the per-member cap)", got, LocalConfig().MaxEndpointsPerMember)
		}
		return nil
	})
	wantRefused := uint64(len(bad) + MaxEndpoints - LocalConfig().MaxEndpointsPerMember)
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := victim.Stats().EndpointsRefused; got < wantRefused {
			return fmt.Errorf("EndpointsRefused: got %d, want at least %d", got, wantRefused)
		}
		return nil
	})
	// A request through the victim to "other" finds nobody to dial.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err = req.Request(ctx, "hi", nil)
	cancel()
	if err == nil {
		t.Fatal("request to the decoy's service: got an answer, want none")
	}
	for _, svc := range []string{"meta", "other", "unix", "inproc", "name"} {
		if got := rec[svc].ever(); len(got) != 0 {
			t.Errorf("victim's watch of %s reported %v, want nothing ever", svc, got)
		}
	}
	if got := len(rec["many"].ever()); got > LocalConfig().MaxEndpointsPerMember {
		t.Errorf("victim's watch of many reported %d distinct endpoints, want at most %d", got, LocalConfig().MaxEndpointsPerMember)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("decoy service on another host IP: got %d connections, want 0", n)
	}
	st := victim.Stats()
	if !strings.Contains(st.LastError, "refused") {
		t.Errorf("LastError: got %q, want a refusal described", st.LastError)
	}
	t.Logf("victim stats: %+v", st)
}

// TestEndpointCaps: the per-service cap counts endpoints across members,
// and EndpointCIDRs lets a member advertise on an allow-listed host.
func TestEndpointCaps(t *testing.T) {
	cfg := func(c *Config) {
		c.MaxEndpointsPerService = 3
		c.EndpointCIDRs = append(c.EndpointCIDRs, mustPrefix("10.1.0.0/16"))
	}
	victim := testNode(t, "victim", nil, cfg)
	a := testNode(t, "a", []string{victim.Addr()})
	b := testNode(t, "b", []string{victim.Addr()})
	waitMembers(t, 3, victim, a, b)
	r := record(t, victim, "svc", spmesh.RoleReplier)
	for i := range 2 {
		a.Advertise(spmesh.Endpoint{Service: "svc", Role: spmesh.RoleReplier, Addr: fmt.Sprintf("tcp://127.0.0.1:%d", 9000+i)})
		b.Advertise(spmesh.Endpoint{Service: "svc", Role: spmesh.RoleReplier, Addr: fmt.Sprintf("tcp://10.1.2.3:%d", 9000+i)})
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := r.current(); len(got) != 3 {
			return fmt.Errorf("victim lists %v, want 3 endpoints (the per-service cap)", got)
		}
		if victim.Stats().EndpointsRefused == 0 {
			return errors.New("EndpointsRefused: got 0, want the endpoint past the cap counted")
		}
		return nil
	})
	if got := len(r.ever()); got > 4 {
		t.Errorf("watch reported %d distinct endpoints, want at most 4", got)
	}
}

// TestHijackRefused: an attacker answers pulls with records in the victim's
// name, and sends records naming the victim in a message and in a
// push/pull exchange: the callers' watch never shows the attacker's
// address, and the victim's own endpoint stays listed.
func TestHijackRefused(t *testing.T) {
	caller := testNode(t, "caller", nil)
	victim := testNode(t, "victim", []string{caller.Addr()})
	evil := testNode(t, "evil", []string{caller.Addr()})
	waitMembers(t, 3, caller, victim, evil)
	r := record(t, caller, "thumbs", spmesh.RoleReplier)
	mine := spmesh.Endpoint{Service: "thumbs", Role: spmesh.RoleReplier, Addr: "tcp://127.0.0.1:7001"}
	theirs := spmesh.Endpoint{Service: "thumbs", Role: spmesh.RoleReplier, Addr: "tcp://127.0.0.1:6666"}
	if _, err := victim.Advertise(mine); err != nil {
		t.Fatal(err)
	}
	forge(evil, "victim", []spmesh.Endpoint{theirs})
	// Records naming the victim pushed at the caller: in a message, and in
	// a push/pull exchange's state.
	var msg bytes.Buffer
	msg.WriteByte(msgRecords)
	encodeRecords(&msg, "victim", 1<<62, []spmesh.Endpoint{{Service: "thumbs", Role: spmesh.RoleReplier, Addr: "tcp://127.0.0.1:6667", Node: "victim"}})
	for _, m := range evil.ml.Members() {
		if m.Name == "caller" {
			if err := evil.ml.SendReliable(m, msg.Bytes()); err != nil {
				t.Fatal(err)
			}
		}
	}
	state := append([]byte{stateVersion}, msg.Bytes()[1:]...)
	(*mlDelegate)(caller).MergeRemoteState(state, false)
	testutil.Eventually(t, 10*time.Second, func() error {
		got := r.current()
		if len(got) != 1 || got[0] != (spmesh.Endpoint{Service: "thumbs", Role: spmesh.RoleReplier, Addr: mine.Addr, Node: "victim"}) {
			return fmt.Errorf("caller sees %v, want only the victim's own endpoint", got)
		}
		if st := caller.Stats(); st.RecordsRefused < 3 {
			return fmt.Errorf("RecordsRefused: got %d, want at least 3 (pull, message, push/pull)", st.RecordsRefused)
		}
		return nil
	})
	for _, e := range r.ever() {
		if e.Addr != mine.Addr || e.Node != "victim" {
			t.Errorf("caller's watch reported %+v, want never the attacker's", e)
		}
	}
	if st := caller.Stats(); !strings.Contains(st.LastError, "evil") {
		t.Errorf("LastError: got %q, want the attacker named", st.LastError)
	}
}

// TestWarnings: a node without a gossip key warns once at start.
func TestWarnings(t *testing.T) {
	var logs logSink
	testNode(t, "plain", nil, func(c *Config) { c.Logger = logs.logger() })
	if got := logs.count("not encrypted"); got != 1 {
		t.Errorf("warnings about missing encryption: got %d, want 1", got)
	}
	var logs2 logSink
	testNode(t, "keyed", nil, func(c *Config) { c.Logger = logs2.logger(); c.SecretKey = make([]byte, 16) })
	if got := logs2.count("not encrypted"); got != 0 {
		t.Errorf("warnings about missing encryption with a key: got %d, want 0", got)
	}
}

func TestCheckRemoteEndpoint(t *testing.T) {
	host := mustAddr("10.0.0.5")
	allowed := []netip.Prefix{mustPrefix("10.1.0.0/16")}
	for addr, want := range map[string]error{
		"tcp://10.0.0.5:7001":             nil,
		"tls+tcp://10.0.0.5:7001":         nil,
		"ws://10.0.0.5:80/path":           nil,
		"wss://10.0.0.5:443/":             nil,
		"tcp://10.1.9.9:7001":             nil,
		"tcp://[::ffff:10.0.0.5]:7001":    nil,
		"tcp://10.0.0.6:7001":             errOtherHost,
		"tcp://127.0.0.1:7001":            errOtherHost,
		"tcp://169.254.169.254:80":        errForbidden,
		"tcp://100.100.100.200:80":        errForbidden,
		"tcp://[fe80::1]:80":              errForbidden,
		"tcp://0.0.0.0:80":                errForbidden,
		"tcp://224.0.0.1:80":              errForbidden,
		"tcp://example.com:80":            errHostName,
		"tcp://10.0.0.5":                  errForm,
		"tcp://10.0.0.5:0":                errForm,
		"tcp://10.0.0.5:99999":            errForm,
		"tcp://10.0.0.5:80/x":             errForm,
		"tcp://u@10.0.0.5:80":             errForm,
		"ipc:///tmp/x.sock":               errScheme,
		"inproc://x":                      errScheme,
		"unix:///tmp/x":                   errScheme,
		"http://10.0.0.5:80":              errScheme,
		"10.0.0.5:80":                     errScheme,
		"name:someone":                    errNameAddr,
		"tcp://[fe80::1%25eth0]:80":       errForm,
		"tls+tcp://[fd00:ec2::254]:80":    errForbidden,
		"tcp://255.255.255.255:80":        errForbidden,
		"ws://10.0.0.5:80/path?q=1#frag":  errForm,
		"tcp://10.0.0.5:80?x=1":           errForm,
		"tcp://[::1]:80":                  errOtherHost,
		"tcp://10.0.0.5:+80":              errForm,
		"tcp://10.0.0.5:0080":             nil,
		"tcp://10.0.0.5:-1":               errForm,
		"tls+tcp://169.254.169.254:80/..": errForm,
	} {
		ep := spmesh.Endpoint{Service: "s", Role: spmesh.RoleReplier, Addr: addr}
		if got := checkRemoteEndpoint(ep, host, allowed); !errors.Is(got, want) && got != want {
			t.Errorf("%s: got %v, want %v", addr, got, want)
		}
	}
	resp := spmesh.Endpoint{Service: "s", Role: spmesh.RoleRespondent, Addr: "name:someone"}
	if err := checkRemoteEndpoint(resp, host, nil); err != nil {
		t.Errorf("respondent name: got %v, want nil", err)
	}
}

func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// logSink collects log records.
type logSink struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logSink) logger() *slog.Logger { return slog.New(sinkHandler{l}) }

func (l *logSink) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := 0
	for _, m := range l.msgs {
		if strings.Contains(m, sub) {
			k++
		}
	}
	return k
}

type sinkHandler struct{ l *logSink }

func (h sinkHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h sinkHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h sinkHandler) WithGroup(string) slog.Handler            { return h }
func (h sinkHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	h.l.mu.Lock()
	h.l.msgs = append(h.l.msgs, b.String())
	h.l.mu.Unlock()
	return nil
}

// forge makes n serve records in name's name holding eps, and announces a
// new gen so that peers pull them.
func forge(n *Node, name string, eps []spmesh.Endpoint) {
	n.mu.Lock()
	n.forge = func() (string, []spmesh.Endpoint) { return name, eps }
	n.localChanged()
	n.mu.Unlock()
}

// TestRejoinBackoff: a gone member's address is re-joined less and less
// often (it may be another service's port by now), up to 32 intervals.
func TestRejoinBackoff(t *testing.T) {
	// The node's own re-join loop never ticks during the test.
	n := testNode(t, "n", nil, func(c *Config) { c.RejoinInterval, c.RejoinWindow = time.Hour, 1000*time.Hour })
	iv := n.cfg.RejoinInterval
	t0 := time.Now()
	n.mu.Lock()
	n.gone["ghost"] = goneNode{addr: "127.0.0.1:9", at: t0}
	n.mu.Unlock()
	var at []int // intervals at which the address was a target
	for i := range 200 {
		for _, a := range n.rejoinTargets(t0.Add(time.Duration(i) * iv)) {
			if a == "127.0.0.1:9" {
				at = append(at, i)
			}
		}
	}
	want := []int{0, 1, 3, 7, 15, 31, 63, 95, 127, 159, 191}
	if !slices.Equal(at, want) {
		t.Fatalf("re-joined at intervals %v, want %v", at, want)
	}
}
