package main

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/internal/pki"
)

// pkiFiles writes a CA and a certificate per name (naming the node and
// 127.0.0.1) to a temporary directory; files[name] is the flags that
// present it.
type pkiFiles struct {
	ca    *pki.CA
	caPEM string
	certs map[string]tls.Certificate
	flags map[string][]string
}

func newPKI(t *testing.T, names ...string) *pkiFiles {
	t.Helper()
	ca, err := pki.NewCA("cli test")
	if err != nil {
		t.Fatal(err)
	}
	p := &pkiFiles{ca: ca, certs: map[string]tls.Certificate{}, flags: map[string][]string{}}
	dir := t.TempDir()
	for _, n := range names {
		c, err := ca.Issue(n, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		caFile, certFile, keyFile, err := ca.WriteFiles(dir, n, c)
		if err != nil {
			t.Fatal(err)
		}
		p.caPEM = caFile
		p.certs[n] = c
		p.flags[n] = []string{"--name", n, "--tls-cert", certFile, "--tls-key", keyFile, "--tls-ca", caFile, "--require-tls", "--verify-node"}
	}
	return p
}

// secureSeed starts an in-process mesh node with mutual TLS, Require and
// VerifyNode under name.
func secureSeed(t *testing.T, p *pkiFiles, name string) string {
	t.Helper()
	cfg := discovery.LocalConfig()
	cfg.Name = name
	c := p.certs[name]
	cfg.TLS = spmesh.TLSPolicy{Server: p.ca.Server(c, true), Client: p.ca.Client(&c), Require: true, VerifyNode: true}
	n, err := discovery.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Leave(ctx)
	})
	return n.Addr()
}

func args(parts ...[]string) []string {
	var all []string
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

// TestTLSMesh: with --tls-* --require-tls --verify-node, a replier
// listens and advertises on tls+tcp://, a requester with its own
// certificate gets every answer from it and none from a plaintext intruder
// advertising the same service; a requester without a certificate is
// refused, and its error says why.
func TestTLSMesh(t *testing.T) {
	t.Parallel()
	p := newPKI(t, "seed", "rep-1", "cli")
	addr := secureSeed(t, p, "seed")

	// No --name: the node takes its certificate's name.
	rep := start(t, args([]string{"reply", "echo", "-j", addr, "-v", "--data", `"secure"`}, p.flags["rep-1"][2:])...)
	rep.waitLine(rep.stderr, `node rep-1 gossiping on`, waitReady)
	rep.waitLine(rep.stderr, `serving echo at tls\+tcp://127\.0\.0\.1:\d+`, waitReady)
	intruder := start(t, "reply", "echo", "-j", addr, "-v", "--name", "intruder", "--data", `"intruder"`)
	intruder.waitLine(intruder.stderr, `serving echo at tcp://127\.0\.0\.1:\d+`, waitReady)

	// Ten requests, one per stdin line, all answered over TLS.
	r := mustRun(t, 0, strings.Repeat("x\n", 10), args([]string{"req", "echo", "-j", addr, "--wait", "20s"}, p.flags["cli"])...)
	if got, want := r.stdout, strings.Repeat("\"secure\"\n", 10); got != want {
		t.Fatalf("got replies %q, want ten from the TLS replier\n%s", got, r)
	}
	if strings.Contains(intruder.stdout.String(), "request") {
		t.Fatalf("the plaintext intruder was sent requests:\n%s", intruder)
	}

	// No client certificate: the members refuse to hand over their records
	// (pulled over mutual TLS), so the service cannot be found; the error
	// says why.
	r = mustRun(t, exitNoService, "", "req", "echo", "-j", addr, "--wait", "5s", "--timeout", "2s",
		"--name", "nocert", "--tls-ca", p.caPEM, "--require-tls", "x")
	if !strings.Contains(r.stderr, "no such service") || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("got stderr %q, want a no-such-service error naming the refused certificate\n%s", r.stderr, r)
	}
	// No TLS at all: the TLS replier is out of reach (only the intruder
	// answers such a client).
	r = mustRun(t, 0, "", "req", "echo", "-j", addr, "--wait", "20s", "--timeout", "5s", "--name", "plain", "x")
	if strings.Contains(r.stdout, "secure") {
		t.Fatalf("plaintext client: got %q, want no answer from the TLS replier\n%s", r.stdout, r)
	}
}

// TestTLSFlagUsage: inconsistent TLS flags are usage errors.
func TestTLSFlagUsage(t *testing.T) {
	t.Parallel()
	p := newPKI(t, "a")
	dir := filepath.Dir(p.caPEM)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"req", "--dial", "tls+tcp://127.0.0.1:1", "--tls-cert", filepath.Join(dir, "a.pem"), "x"}, "--tls-cert and --tls-key go together"},
		{[]string{"req", "--dial", "tls+tcp://127.0.0.1:1", "--require-tls", "x"}, "--require-tls"},
		{[]string{"req", "--dial", "tls+tcp://127.0.0.1:1", "--tls-ca", filepath.Join(dir, "a-key.pem"), "x"}, "no PEM certificate"},
		{[]string{"req", "--dial", "tcp://127.0.0.1:1", "--tls-ca", p.caPEM, "--require-tls", "x"}, "TLS is required"},
	} {
		r := runCLI(t, "", c.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("got exit %d, stderr %q; want exit %d and %q\n%s", r.code, r.stderr, exitUsage, c.want, r)
		}
	}
}

// TestJoinMismatchExplained: a wrong label or key is not a bare EOF.
func TestJoinMismatchExplained(t *testing.T) {
	t.Parallel()
	cfg := discovery.LocalConfig()
	cfg.Name = "labelled-seed"
	cfg.Label = "prod"
	cfg.SecretKey = []byte("0123456789abcdef")
	n, err := discovery.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Leave(ctx)
	})
	key := "MDEyMzQ1Njc4OWFiY2RlZg==" // base64 of the seed's key
	for name, extra := range map[string][]string{
		"wrong label": {"--label", "staging", "--key", key},
		"no label":    {"--key", key},
		"wrong key":   {"--label", "prod", "--key", "ZmVkY2JhOTg3NjU0MzIxMA=="},
		"no key":      {"--label", "prod"},
	} {
		r := runCLI(t, "", append([]string{"members", "-j", n.Addr()}, extra...)...)
		if r.code != exitNoJoin || !strings.Contains(r.stderr, "likely cause") {
			t.Errorf("%s: got exit %d, stderr %q; want exit %d naming the likely cause\n%s", name, r.code, r.stderr, exitNoJoin, r)
		}
	}
}
