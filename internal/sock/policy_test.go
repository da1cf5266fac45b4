package sock_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/internal/pki"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/testutil"
)

// mesh is a CA with a certificate per node name, for mutual TLS tests.
type mesh struct {
	t  *testing.T
	ca *pki.CA
}

func newMesh(t *testing.T) *mesh {
	t.Helper()
	ca, err := pki.NewCA("test mesh")
	if err != nil {
		t.Fatal(err)
	}
	return &mesh{t: t, ca: ca}
}

func (m *mesh) cert(names ...string) tls.Certificate {
	m.t.Helper()
	c, err := m.ca.Issue(names...)
	if err != nil {
		m.t.Fatal(err)
	}
	return c
}

// policy is a mutual TLS policy for the node named name.
func (m *mesh) policy(name string, require, verifyNode bool) spmesh.TLSPolicy {
	c := m.cert(name, "127.0.0.1")
	return spmesh.TLSPolicy{Server: m.ca.Server(c, true), Client: m.ca.Client(&c), Require: require, VerifyNode: verifyNode}
}

func openErr(p sock.Proto, w sock.Wiring, opts ...sock.Option) (*sock.Socket, error) {
	s := sock.DefaultSettings()
	for _, o := range opts {
		if err := o(&s); err != nil {
			return nil, err
		}
	}
	return sock.Open(p, s, w)
}

// serve answers every request on so with name, counting them in n, until
// so closes.
func serve(so *sock.Socket, name string, n *atomic.Int64) {
	for {
		if _, err := sock.Mangos(so).Recv(); err != nil {
			return
		}
		n.Add(1)
		if err := sock.Mangos(so).Send([]byte(name)); err != nil {
			return
		}
	}
}

func goServe(t *testing.T, so *sock.Socket, name string) *atomic.Int64 {
	var n atomic.Int64
	done := make(chan struct{})
	go func() { defer close(done); serve(so, name, &n) }()
	t.Cleanup(func() { so.Close(); <-done })
	return &n
}

func stat(so *sock.Socket, what string, f func(spmesh.Stats) bool) func() error {
	return func() error {
		if st := so.Stats(); !f(st) {
			return fmt.Errorf("%s: stats %+v", what, st)
		}
		return nil
	}
}

// A binder wired through a registry with TLS listens on tls+tcp:// and
// advertises it, and never defaults to plaintext.
func TestSecureRegistryBinderListensOnTLS(t *testing.T) {
	m := newMesh(t)
	reg := discovery.NewStatic("127.0.0.1")
	defer reg.Close()
	if err := reg.SetTLSPolicy(m.policy("a", false, false)); err != nil {
		t.Fatal(err)
	}
	open(t, sock.Rep, sock.Wiring{Bind: spmesh.RoleReplier}, sock.WithDiscovery(reg, "svc"))
	eps := reg.Endpoints()
	if len(eps) != 1 || !strings.HasPrefix(eps[0].Addr, "tls+tcp://127.0.0.1:") {
		t.Fatalf("got %v advertised, want one tls+tcp://127.0.0.1:port", eps)
	}

	// The same with WithTLS alone (the issue's case: it used to listen on
	// plain tcp:// without a word).
	plain := discovery.NewStatic("127.0.0.1")
	defer plain.Close()
	srv, _ := testutil.TLSConfigs(t)
	open(t, sock.Rep, sock.Wiring{Bind: spmesh.RoleReplier}, sock.WithDiscovery(plain, "svc"), sock.WithTLS(srv))
	if eps := plain.Endpoints(); len(eps) != 1 || !strings.HasPrefix(eps[0].Addr, "tls+tcp://") {
		t.Fatalf("WithTLS: got %v advertised, want tls+tcp://", eps)
	}

	// A client-only TLS config cannot listen: an error, not plaintext.
	_, cli := testutil.TLSConfigs(t)
	if so, err := openErr(sock.Rep, sock.Wiring{Bind: spmesh.RoleReplier}, sock.WithDiscovery(plain, "other"), sock.WithTLS(cli)); !errors.Is(err, spmesh.ErrInvalidOption) {
		if so != nil {
			so.Close()
		}
		t.Fatalf("binder with a certificate-less TLS config: got %v, want ErrInvalidOption", err)
	}
}

// With TLS required, plaintext is refused even when asked for explicitly.
func TestRequireTLSRefusesPlaintextWiring(t *testing.T) {
	srv, _ := testutil.TLSConfigs(t)
	cases := map[string][]sock.Option{
		"listen tcp":        {sock.WithTLS(srv), sock.WithRequireTLS(), sock.WithListen("tcp://127.0.0.1:0")},
		"dial tcp":          {sock.WithTLS(srv), sock.WithRequireTLS(), sock.WithDial("tcp://127.0.0.1:1")},
		"dial inproc":       {sock.WithTLS(srv), sock.WithRequireTLS(), sock.WithDial("inproc://x")},
		"require no config": {sock.WithRequireTLS(), sock.WithListen("tls+tcp://127.0.0.1:0")},
	}
	for name, opts := range cases {
		so, err := openErr(sock.Rep, sock.Wiring{}, opts...)
		if !errors.Is(err, spmesh.ErrInvalidOption) {
			if so != nil {
				so.Close()
			}
			t.Errorf("%s: got %v, want ErrInvalidOption", name, err)
		}
	}
	// VerifyNode over an unverified chain would prove nothing.
	m := newMesh(t)
	pol := m.policy("a", true, true)
	pol.Client.InsecureSkipVerify = true
	reg := discovery.NewStatic("127.0.0.1")
	defer reg.Close()
	if err := reg.SetTLSPolicy(pol); err != nil {
		t.Fatal(err)
	}
	if so, err := openErr(sock.Req, sock.Wiring{Watch: spmesh.RoleReplier}, sock.WithDiscovery(reg, "svc")); !errors.Is(err, spmesh.ErrInvalidOption) {
		if so != nil {
			so.Close()
		}
		t.Errorf("VerifyNode with InsecureSkipVerify: got %v, want ErrInvalidOption", err)
	}

	so := open(t, sock.Rep, sock.Wiring{}, sock.WithTLS(srv), sock.WithRequireTLS())
	if _, err := so.Listen("tcp://127.0.0.1:0"); !errors.Is(err, spmesh.ErrInvalidOption) {
		t.Errorf("Listen tcp:// later: got %v, want ErrInvalidOption", err)
	}
	if err := so.Dial("tcp://127.0.0.1:1"); !errors.Is(err, spmesh.ErrInvalidOption) {
		t.Errorf("Dial tcp:// later: got %v, want ErrInvalidOption", err)
	}
}

// A mixed mesh: one replier on tcp://, one on tls+tcp://. A requester with
// TLS required sends nothing to the plaintext one, and counts and explains
// the refusal. Real sockets, TCP on loopback.
func TestMixedMeshRequireTLSNoPlaintext(t *testing.T) {
	for _, require := range []bool{true, false} {
		t.Run(fmt.Sprintf("require=%v", require), func(t *testing.T) {
			m := newMesh(t)
			reg := discovery.NewStatic("127.0.0.1")
			defer reg.Close()
			if err := reg.SetTLSPolicy(m.policy("secure", require, false)); err != nil {
				t.Fatal(err)
			}
			secure := open(t, sock.Rep, sock.Wiring{Bind: spmesh.RoleReplier}, sock.WithDiscovery(reg, "echo"))
			nSecure := goServe(t, secure, "secure")

			// An insider advertises a plaintext endpoint of the service.
			insider := open(t, sock.Rep, sock.Wiring{})
			iaddr, err := insider.Listen("tcp://127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			nPlain := goServe(t, insider, "insider")
			if err := reg.Add(spmesh.Endpoint{Service: "echo", Role: spmesh.RoleReplier, Addr: iaddr, Node: "insider"}); err != nil {
				t.Fatal(err)
			}

			req := open(t, sock.Req, sock.Wiring{Watch: spmesh.RoleReplier}, sock.WithDiscovery(reg, "echo"))
			testutil.Eventually(t, 10*time.Second, peers(req, 1))
			testutil.Eventually(t, 10*time.Second, stat(req, "one endpoint refused", func(s spmesh.Stats) bool {
				return s.EndpointsRefused == 1 && strings.Contains(s.LastError, iaddr) && strings.Contains(s.LastError, "plaintext")
			}))
			const n = 64
			for i := range n {
				if err := sock.Mangos(req).Send([]byte("ping")); err != nil {
					t.Fatal(err)
				}
				got, err := sock.Mangos(req).Recv()
				if err != nil || string(got) != "secure" {
					t.Fatalf("request %d: got %q %v, want an answer from the TLS replier", i, got, err)
				}
			}
			if got := nPlain.Load(); got != 0 {
				t.Fatalf("got %d requests at the plaintext replier, want 0", got)
			}
			if got := nSecure.Load(); got != n {
				t.Fatalf("got %d requests at the TLS replier, want %d", got, n)
			}
			if got := insider.Stats().Peers; got != 0 {
				t.Fatalf("plaintext replier has %d peers, want 0", got)
			}
			// Refused once, not once per registry update.
			reg.Add(spmesh.Endpoint{Service: "echo", Role: spmesh.RoleReplier, Addr: "tcp://127.0.0.1:1", Node: "other"})
			testutil.Eventually(t, 10*time.Second, stat(req, "two refused", func(s spmesh.Stats) bool { return s.EndpointsRefused == 2 }))
		})
	}
}

// A connector never dials inproc:// or ipc:// endpoints advertised by
// another node.
func TestHostLocalEndpointFromAnotherNodeRefused(t *testing.T) {
	reg := discovery.NewStatic("127.0.0.1")
	defer reg.Close()
	rep := open(t, sock.Rep, sock.Wiring{})
	if _, err := rep.Listen("inproc://tls-policy-local"); err != nil {
		t.Fatal(err)
	}
	reg.Add(spmesh.Endpoint{Service: "svc", Role: spmesh.RoleReplier, Addr: "inproc://tls-policy-local", Node: "rogue"},
		spmesh.Endpoint{Service: "svc", Role: spmesh.RoleReplier, Addr: "ipc:///tmp/spmesh-never", Node: "rogue"})
	req := open(t, sock.Req, sock.Wiring{Watch: spmesh.RoleReplier}, sock.WithDiscovery(reg, "svc"))
	testutil.Eventually(t, 10*time.Second, stat(req, "two refused", func(s spmesh.Stats) bool {
		return s.EndpointsRefused == 2 && strings.Contains(s.LastError, "another node")
	}))
	if got := req.Peers(); got != 0 {
		t.Fatalf("got %d peers, want 0", got)
	}
	// The same endpoint from this process (no node) is dialed.
	reg.Add(spmesh.Endpoint{Service: "svc", Role: spmesh.RoleReplier, Addr: "inproc://tls-policy-local"})
	testutil.Eventually(t, 10*time.Second, peers(req, 1))
}

// Clients without a certificate, or trusting another CA, are refused by a
// mutual TLS listener; both sides count the failed handshake, record it as
// LastError, and the caller's ErrNoPeers says why.
func TestMutualTLSRefusals(t *testing.T) {
	m := newMesh(t)
	srvCert := m.cert("server", "127.0.0.1")
	other := newMesh(t)
	otherCert := other.cert("client", "127.0.0.1")
	cases := map[string]struct {
		client *tls.Config
		want   []string // in the client's LastError, any of
	}{
		"no client certificate": {m.ca.Client(nil), []string{"certificate"}},
		"wrong CA":              {other.ca.Client(&otherCert), []string{"unknown authority"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			rep := open(t, sock.Rep, sock.Wiring{}, sock.WithTLS(m.ca.Server(srvCert, true)))
			addr, err := rep.Listen("tls+tcp://127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			req := open(t, sock.Req, sock.Wiring{}, sock.WithTLS(c.client), sock.WithDial(addr),
				sock.WithReconnect(20*time.Millisecond, 100*time.Millisecond))
			testutil.Eventually(t, 10*time.Second, stat(rep, "server handshake error", func(s spmesh.Stats) bool {
				return s.HandshakeErrors > 0 && strings.Contains(s.LastError, "127.0.0.1:") && strings.Contains(s.LastError, "tls")
			}))
			testutil.Eventually(t, 10*time.Second, stat(req, "client handshake error", func(s spmesh.Stats) bool {
				return s.HandshakeErrors > 0 && strings.Contains(s.LastError, addr[len("tls+tcp://"):]) && containsAny(s.LastError, c.want)
			}))
			if p := req.Peers() + rep.Peers(); p != 0 {
				t.Fatalf("got %d peers, want 0", p)
			}
			err = req.NoPeers("no replier connected")
			if !errors.Is(err, spmesh.ErrNoPeers) || !containsAny(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrNoPeers explaining the handshake failure (%v)", err, c.want)
			}
		})
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// With VerifyNode, the certificate at a discovered endpoint must name the
// node that advertised it: a member serving another's name is refused.
func TestVerifyNodeRefusesImpostor(t *testing.T) {
	m := newMesh(t)
	reg := discovery.NewStatic("127.0.0.1")
	defer reg.Close()
	if err := reg.SetTLSPolicy(m.policy("client", true, true)); err != nil {
		t.Fatal(err)
	}
	listen := func(certName string) string {
		c := m.cert(certName, "127.0.0.1")
		rep := open(t, sock.Rep, sock.Wiring{}, sock.WithTLS(m.ca.Server(c, true)))
		addr, err := rep.Listen("tls+tcp://127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		goServe(t, rep, certName)
		return addr
	}
	evil := listen("evil")
	// evil's endpoint, advertised under the victim's name.
	reg.Add(spmesh.Endpoint{Service: "svc", Role: spmesh.RoleReplier, Addr: evil, Node: "victim"})
	req := open(t, sock.Req, sock.Wiring{Watch: spmesh.RoleReplier}, sock.WithDiscovery(reg, "svc"),
		sock.WithReconnect(20*time.Millisecond, 100*time.Millisecond))
	testutil.Eventually(t, 10*time.Second, stat(req, "impostor refused", func(s spmesh.Stats) bool {
		return s.HandshakeErrors > 0 && strings.Contains(s.LastError, "not victim")
	}))
	if got := req.Peers(); got != 0 {
		t.Fatalf("got %d peers, want 0", got)
	}
	// The victim itself, with its own certificate, is reached.
	good := listen("victim")
	reg.Add(spmesh.Endpoint{Service: "svc", Role: spmesh.RoleReplier, Addr: good, Node: "victim"})
	testutil.Eventually(t, 10*time.Second, peers(req, 1))
	for range 8 {
		if err := sock.Mangos(req).Send([]byte("who")); err != nil {
			t.Fatal(err)
		}
		if got, err := sock.Mangos(req).Recv(); err != nil || string(got) != "victim" {
			t.Fatalf("got %q %v, want victim", got, err)
		}
	}
	// An endpoint naming no node cannot be verified: refused, counted.
	reg.Add(spmesh.Endpoint{Service: "svc", Role: spmesh.RoleReplier, Addr: "tls+tcp://127.0.0.1:1"})
	testutil.Eventually(t, 10*time.Second, stat(req, "nameless refused", func(s spmesh.Stats) bool { return s.EndpointsRefused == 1 }))
}

func TestExplain(t *testing.T) {
	so := open(t, sock.Req, sock.Wiring{})
	if err := so.Explain(spmesh.ErrNoPeers); err != spmesh.ErrNoPeers {
		t.Fatalf("no last error: got %v, want ErrNoPeers as is", err)
	}
	so.C.SetLastError("10.0.0.5:7001", errors.New("tls: bad certificate"))
	err := so.Explain(spmesh.ErrNoPeers)
	if !errors.Is(err, spmesh.ErrNoPeers) || !strings.Contains(err.Error(), "tls: bad certificate") || !strings.Contains(err.Error(), "10.0.0.5:7001") {
		t.Fatalf("got %v, want ErrNoPeers quoting the last error", err)
	}
	err = so.NoPeers("no worker connected")
	if want := "spmesh: no peers: no worker connected (last error: 10.0.0.5:7001: tls: bad certificate)"; err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
}

// A socket without a TLS client config does not dial a tls+tcp://
// endpoint (it could not complete a handshake): the refusal is counted and
// says why.
func TestTLSEndpointWithoutClientConfigRefused(t *testing.T) {
	reg := discovery.NewStatic("127.0.0.1")
	defer reg.Close()
	reg.Add(spmesh.Endpoint{Service: "svc", Role: spmesh.RoleReplier, Addr: "tls+tcp://127.0.0.1:1", Node: "n"})
	req := open(t, sock.Req, sock.Wiring{Watch: spmesh.RoleReplier}, sock.WithDiscovery(reg, "svc"))
	testutil.Eventually(t, 10*time.Second, stat(req, "refused", func(s spmesh.Stats) bool {
		return s.EndpointsRefused == 1 && strings.Contains(s.LastError, "no TLS client config")
	}))
}
