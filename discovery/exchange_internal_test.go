package discovery

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
)

// testCA issues certificates naming nodes, for mutual TLS.
type testCA struct {
	t    *testing.T
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{t, cert, key, pool}
}

// policy returns a mutual-TLS policy for a node whose certificate names
// dnsName.
func (ca *testCA) policy(dnsName string, verifyNode bool) spmesh.TLSPolicy {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: dnsName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames:    []string{dnsName},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	c := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return spmesh.TLSPolicy{
		Server:     &tls.Config{Certificates: []tls.Certificate{c}, ClientCAs: ca.pool, ClientAuth: tls.RequireAndVerifyClientCert},
		Client:     &tls.Config{Certificates: []tls.Certificate{c}, RootCAs: ca.pool},
		Require:    true,
		VerifyNode: verifyNode,
	}
}

// TestExchangeTLS: with mutual TLS and VerifyNode, a member's records are
// taken only when its certificate names it; a member with another's
// certificate, one with a certificate of another CA, and one without TLS
// are listed without endpoints, each refusal counted and described.
func TestExchangeTLS(t *testing.T) {
	ca := newTestCA(t)
	withTLS := func(p spmesh.TLSPolicy) func(*Config) { return func(c *Config) { c.TLS = p } }
	a := testNode(t, "a", nil, withTLS(ca.policy("a", true)))
	b := testNode(t, "b", []string{a.Addr()}, withTLS(ca.policy("b", true)))
	liar := testNode(t, "liar", []string{a.Addr()}, withTLS(ca.policy("b", true)))                          // b's name on its certificate
	stranger := testNode(t, "stranger", []string{a.Addr()}, withTLS(newTestCA(t).policy("stranger", true))) // another CA
	plain := testNode(t, "plain", []string{a.Addr()})
	waitMembers(t, 5, a)
	r := record(t, a, "svc", spmesh.RoleReplier)
	for i, n := range []*Node{b, liar, stranger, plain} {
		if _, err := n.Advertise(spmesh.Endpoint{Service: "svc", Role: spmesh.RoleReplier, Addr: fmt.Sprintf("tls+tcp://127.0.0.1:%d", 7000+i)}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		got := r.current()
		if len(got) != 1 || got[0].Node != "b" {
			return fmt.Errorf("a lists %v, want b's endpoint only", got)
		}
		if st := a.Stats(); st.HandshakeErrors < 3 {
			return fmt.Errorf("HandshakeErrors: got %d, want at least 3 (liar, stranger, plain); last error %q", st.HandshakeErrors, st.LastError)
		}
		return nil
	})
	for _, e := range r.ever() {
		if e.Node != "b" {
			t.Errorf("a's watch reported %+v, want only b's endpoint ever", e)
		}
	}
	// The member without TLS refuses a's plaintext-free pull, and a
	// never pulls it in plaintext (TLS.Require): both sides count it.
	testutil.Eventually(t, 5*time.Second, func() error {
		if st := plain.Stats(); st.HandshakeErrors == 0 {
			return errors.New("plain node: HandshakeErrors 0, want a's TLS pull refused and counted")
		}
		return nil
	})
	t.Logf("a's stats: %+v", a.Stats())
}

// TestExchangeKeyAndLabel: with a gossip key the records exchange is
// sealed (a pull without the key is refused and counted); a label
// mismatch is refused, counted and named in the error of the join.
func TestExchangeKeyAndLabel(t *testing.T) {
	key := []byte("0123456789abcdef")
	keyed := func(c *Config) { c.SecretKey = key; c.Label = "blue" }
	a := testNode(t, "a", nil, keyed)
	b := testNode(t, "b", []string{a.Addr()}, keyed)
	waitMembers(t, 2, a, b)
	r := record(t, a, "svc", spmesh.RoleReplier)
	b.Advertise(spmesh.Endpoint{Service: "svc", Role: spmesh.RoleReplier, Addr: "tcp://127.0.0.1:7000"})
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := r.current(); len(got) != 1 {
			return fmt.Errorf("a lists %v, want b's endpoint", got)
		}
		return nil
	})
	// An outsider without the key pulls b's records directly: refused.
	out := testNode(t, "outsider", nil)
	if _, _, err := out.pull("b", b.Addr(), time.Second); err == nil {
		t.Fatal("pull without the key: got records, want a refusal")
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if st := b.Stats(); st.HandshakeErrors == 0 {
			return errors.New("b: HandshakeErrors 0 after a pull without the key, want it counted")
		}
		return nil
	})
	// Another label: the join fails naming the seed and the likely cause.
	green := testNode(t, "green", nil, func(c *Config) { c.SecretKey = key; c.Label = "green" })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := green.Join(ctx, a.Addr())
	if err == nil || !strings.Contains(err.Error(), "seed "+a.Addr()) || !strings.Contains(err.Error(), "Label") {
		t.Errorf("join with another label: got %v, want an error naming seed %s and the label", err, a.Addr())
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if st := a.Stats(); st.GossipRefused == 0 {
			return errors.New("a: GossipRefused 0, want the stream with another label counted")
		}
		return nil
	})
	// A label mismatch in the records exchange itself.
	if _, _, err := green.pull("b", b.Addr(), time.Second); err == nil || !strings.Contains(err.Error(), "label") {
		t.Errorf("pull with another label: got %v, want a label mismatch", err)
	}
}

// TestCIDRsAllowed: a node that accepts gossip from its own address only
// refuses a joiner from elsewhere, and counts it; a range without the
// node's own address is refused by New.
func TestCIDRsAllowed(t *testing.T) {
	only := func(c *Config) {
		c.BindAddr = "127.0.0.2"
		c.CIDRsAllowed = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	}
	a := testNode(t, "a", nil, only)
	b := testNode(t, "b", nil) // dials from 127.0.0.1
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if k, err := b.Join(ctx, a.Addr()); err == nil {
		t.Fatalf("join from outside CIDRsAllowed: got %d answered, want an error", k)
	}
	if st := a.Stats(); st.GossipRefused == 0 || !strings.Contains(st.LastError, "CIDRsAllowed") {
		t.Errorf("a's stats: got %+v, want the connection refused and counted", st)
	}
	if got := len(a.Members()); got != 1 {
		t.Errorf("a sees %d members, want 1", got)
	}
	c := LocalConfig()
	c.CIDRsAllowed = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	if n, err := New(c); !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), "CIDRsAllowed") {
		if n != nil {
			n.Close()
		}
		t.Errorf("CIDRsAllowed without the node's address: got %v, want ErrInvalidOption naming it", err)
	}
}

// TestBindToAdvertise: LANConfig binds to the advertise address when it is
// one of this host's, not to every interface.
func TestBindToAdvertise(t *testing.T) {
	c := LANConfig()
	c.Name = "lan"
	c.BindPort = 0
	c.AdvertiseAddr = "127.0.0.1"
	n, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	_, port, _ := net.SplitHostPort(n.Addr())
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.2", port), time.Second); err == nil {
		conn.Close()
		t.Errorf("gossip port reachable on 127.0.0.2, want it bound to the advertise address 127.0.0.1 only")
	}
	if conn, err := net.DialTimeout("tcp", n.Addr(), time.Second); err != nil {
		t.Errorf("gossip port on the advertise address: %v", err)
	} else {
		conn.Close()
	}
}
