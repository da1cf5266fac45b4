package sock_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/testutil"
)

// tlsConfigs returns a server and a client config around a fresh
// self-signed certificate for 127.0.0.1.
func tlsConfigs(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "spmesh test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	return server, client
}

func TestTLS(t *testing.T) {
	srv, cli := tlsConfigs(t)
	for _, stock := range []bool{false, true} {
		name := "sptcp"
		if stock {
			name = "stock"
		}
		t.Run(name, func(t *testing.T) {
			opts := func(c *tls.Config) []sock.Option {
				o := []sock.Option{sock.WithTLS(c)}
				if stock {
					o = append(o, sock.WithStockTCP())
				}
				return o
			}
			rep := open(t, sock.Rep, sock.Wiring{}, opts(srv)...)
			addr, err := rep.Listen("tls+tcp://127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(addr, "tls+tcp://127.0.0.1:") {
				t.Fatalf("got bound %q, want a tls+tcp:// address", addr)
			}
			req := open(t, sock.Req, sock.Wiring{}, append(opts(cli), sock.WithDial(addr))...)
			testutil.Eventually(t, 10*time.Second, peers(req, 1))
			testutil.Eventually(t, 10*time.Second, peers(rep, 1))
		})
	}
}

func TestTLSWithoutConfigIsInvalid(t *testing.T) {
	rep := open(t, sock.Rep, sock.Wiring{})
	if _, err := rep.Listen("tls+tcp://127.0.0.1:0"); !errors.Is(err, spmesh.ErrInvalidOption) {
		t.Fatalf("got %v, want ErrInvalidOption", err)
	}
}

// The batching transport and mangos' stock one speak the same wire format.
func TestBatchingInteropsWithStock(t *testing.T) {
	for _, stockListener := range []bool{false, true} {
		var lo, do []sock.Option
		if stockListener {
			lo = append(lo, sock.WithStockTCP())
		} else {
			do = append(do, sock.WithStockTCP())
		}
		rep := open(t, sock.Rep, sock.Wiring{}, lo...)
		addr, err := rep.Listen("tcp://127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		req := open(t, sock.Req, sock.Wiring{}, append(do, sock.WithDial(addr))...)
		testutil.Eventually(t, 10*time.Second, peers(req, 1))
		if err := req.M.Send([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		got, err := rep.M.Recv()
		if err != nil || string(got) != "ping" {
			t.Fatalf("got %q %v, want ping", got, err)
		}
	}
}
