package pki_test

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/spmesh/spmesh/internal/pki"
	"go.uber.org/goleak"
)

func TestIssue(t *testing.T) {
	ca, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Issue("worker-1", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Leaf.DNSNames; len(got) != 1 || got[0] != "worker-1" {
		t.Fatalf("got DNS names %v, want [worker-1]", got)
	}
	if got := c.Leaf.IPAddresses; len(got) != 1 || got[0].String() != "127.0.0.1" {
		t.Fatalf("got IPs %v, want [127.0.0.1]", got)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "worker-1", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Fatalf("usage %v: got %v, want a valid chain", usage, err)
		}
	}
	dir := t.TempDir()
	caFile, certFile, keyFile, err := ca.WriteFiles(dir, "worker-1", c)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: got %v %v, want mode 0600", st.Mode(), err)
	}
	for _, f := range []string{caFile, certFile} {
		if _, err := os.Stat(f); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWriteFilesWhileRead: ca.pem is rewritten each time a certificate is
// issued into a directory; a process reading it meanwhile (the demo's
// children start while others are issued) must always find the CA.
func TestWriteFilesWhileRead(t *testing.T) {
	ca, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("n", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, _, _, err := ca.WriteFiles(dir, "n", cert); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 300; i++ {
			if _, _, _, err := ca.WriteFiles(dir, "n", cert); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 3000; i++ {
		b, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(b) {
			t.Fatalf("read %d: ca.pem held no certificate (%d bytes)", i, len(b))
		}
	}
	wg.Wait()
	left, _ := filepath.Glob(filepath.Join(dir, ".*tmp-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
