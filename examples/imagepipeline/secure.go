package main

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/internal/pki"
)

// The secure mode (-secure for the demo, -pki DIR for one role): every
// process has a certificate naming it, signed by the run's CA, and the mesh
// has a gossip key. Gossip is encrypted with the key, and every socket
// listens and dials on tls+tcp:// with mutual TLS, refuses plaintext
// (Require) and checks that the certificate at each endpoint names the
// member that advertised it (VerifyNode).
//
// A PKI directory holds ca.pem, gossip.key, and NAME.pem and NAME-key.pem
// per process name.

// throwawayPKI is the demo's CA, in a temporary directory: one certificate
// per process, issued as the supervisor starts it.
type throwawayPKI struct {
	dir string
	ca  *pki.CA
	mu  sync.Mutex
}

// newThrowawayPKI makes a CA and a 32-byte gossip key in a new temporary
// directory (the caller removes it).
func newThrowawayPKI() (*throwawayPKI, error) {
	dir, err := os.MkdirTemp("", "imagepipeline-pki-")
	if err != nil {
		return nil, err
	}
	ca, err := pki.NewCA("imagepipeline demo CA")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "gossip.key"), key, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &throwawayPKI{dir: dir, ca: ca}, nil
}

// issue writes a certificate for the process called name (its node name;
// 127.0.0.1 too, for tools that check the address).
func (p *throwawayPKI) issue(name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cert, err := p.ca.Issue(name, "127.0.0.1")
	if err != nil {
		return err
	}
	_, _, _, err = p.ca.WriteFiles(p.dir, name, cert)
	return err
}

// secureConfig sets cfg's gossip key and TLS policy from the PKI
// directory dir for the process called name.
func secureConfig(cfg *discovery.Config, dir, name string) error {
	key, err := os.ReadFile(filepath.Join(dir, "gossip.key"))
	if err != nil {
		return fmt.Errorf("-pki: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
	if err != nil {
		return fmt.Errorf("-pki: certificate of %s: %w", name, err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return fmt.Errorf("-pki: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("-pki: no certificate in %s", filepath.Join(dir, "ca.pem"))
	}
	cfg.SecretKey = key
	cfg.TLS = spmesh.TLSPolicy{
		Server: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool,
			MinVersion:   tls.VersionTLS13,
		},
		Client: &tls.Config{
			Certificates: []tls.Certificate{cert},
			RootCAs:      pool,
			MinVersion:   tls.VersionTLS13,
		},
		Require:    true,
		VerifyNode: true,
	}
	return nil
}
