package discovery_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/internal/testutil"
)

// TestTLSPolicyValidated: a policy that cannot work is refused by New and
// by Static.SetTLSPolicy with an error naming the field; a valid one is
// handed to sockets through TLSPolicy.
func TestTLSPolicyValidated(t *testing.T) {
	srv, cli := testutil.TLSConfigs(t)
	for name, tc := range map[string]struct {
		p     spmesh.TLSPolicy
		field string // empty: valid
	}{
		"require, nothing":     {spmesh.TLSPolicy{Require: true}, "TLS.Require"},
		"verify node, no cli":  {spmesh.TLSPolicy{Server: srv, VerifyNode: true}, "TLS.VerifyNode"},
		"server without cert":  {spmesh.TLSPolicy{Server: &tls.Config{}}, "TLS.Server"},
		"plaintext":            {spmesh.TLSPolicy{}, ""},
		"require, both":        {spmesh.TLSPolicy{Server: srv, Client: cli, Require: true, VerifyNode: true}, ""},
		"require, client only": {spmesh.TLSPolicy{Client: cli, Require: true}, ""},
	} {
		check := func(what string, err error) {
			t.Helper()
			switch {
			case tc.field == "" && err != nil:
				t.Errorf("%s: %s: got %v, want no error", name, what, err)
			case tc.field != "" && (!errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), tc.field)):
				t.Errorf("%s: %s: got %v, want ErrInvalidOption naming %s", name, what, err, tc.field)
			}
		}
		c := discovery.LocalConfig()
		c.TLS = tc.p
		n, err := discovery.New(c)
		check("New", err)
		if n != nil {
			if got := n.TLSPolicy(); got != tc.p {
				t.Errorf("%s: Node.TLSPolicy: got %+v, want %+v", name, got, tc.p)
			}
			n.Close()
		}
		s := discovery.NewStatic("")
		check("SetTLSPolicy", s.SetTLSPolicy(tc.p))
		want := tc.p
		if tc.field != "" {
			want = spmesh.TLSPolicy{} // a refused policy leaves the old one
		}
		if got := s.TLSPolicy(); got != want {
			t.Errorf("%s: Static.TLSPolicy: got %+v, want %+v", name, got, want)
		}
		s.Close()
	}
}
