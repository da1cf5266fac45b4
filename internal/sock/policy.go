package sock

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/logx"
)

// policy is the transport security a socket applies, resolved at Open from
// its own options (WithTLS, WithRequireTLS) and its registry's
// spmesh.TLSPolicy (a spmesh.SecureRegistry). A socket's own WithTLS
// replaces the registry's configs for that socket; Require and VerifyNode
// only add up: an option can tighten the registry's policy, never loosen it.
type policy struct {
	server, client *tls.Config // nil: that side has no TLS configured
	// secure: TLS is configured, so nothing is silently plaintext: a binder
	// given no address listens on tls+tcp://, a connector refuses
	// discovered tcp:// and ws:// endpoints.
	secure bool
	// require: no plaintext at all, even asked for explicitly: no listen or
	// static dial on tcp://, ws://, ipc:// or inproc://, and discovered
	// endpoints only on tls+tcp:// and wss://.
	require bool
	// verifyNode: the certificate at a discovered endpoint must name the
	// node that advertised it.
	verifyNode bool
	// local is this node's name in the registry ("" when unknown): inproc://
	// and ipc:// endpoints are dialed only when they come from it.
	local string
}

// secureSchemes are the schemes that carry TLS.
var secureSchemes = []string{"tls+tcp://", "wss://"}

func isSecure(addr string) bool {
	for _, p := range secureSchemes {
		if strings.HasPrefix(addr, p) {
			return true
		}
	}
	return false
}

// isLocalOnly reports whether addr names something inside this host
// (a process's own inproc:// names, unix sockets): never to be dialed on a
// remote member's word.
func isLocalOnly(addr string) bool {
	return strings.HasPrefix(addr, "inproc://") || strings.HasPrefix(addr, "ipc://")
}

// namer is implemented by registries that know their own node's name
// (discovery.Node).
type namer interface{ Name() string }

// resolvePolicy combines s's options with its registry's policy.
func resolvePolicy(s *Settings) (policy, error) {
	var p policy
	if sr, ok := s.Registry.(spmesh.SecureRegistry); ok {
		rp := sr.TLSPolicy()
		p.server, p.client, p.require, p.verifyNode = rp.Server, rp.Client, rp.Require, rp.VerifyNode
	}
	if n, ok := s.Registry.(namer); ok {
		p.local = n.Name()
	}
	if s.TLS != nil {
		p.server, p.client = s.TLS, s.TLS
	}
	p.require = p.require || s.RequireTLS
	if c := p.server; c != nil && len(c.Certificates) == 0 && c.GetCertificate == nil && c.GetConfigForClient == nil && s.Registry != nil {
		// With discovery a binder listens on TLS by default: it needs a
		// certificate. (Connectors are fine: the config is a client's.)
		p.server = nil
	}
	p.secure = p.require || p.server != nil || p.client != nil
	if p.require && p.server == nil && p.client == nil {
		return p, Invalid("WithRequireTLS without a TLS config (WithTLS, or the registry's TLSPolicy)")
	}
	if p.verifyNode && p.client == nil {
		return p, Invalid("TLS VerifyNode without a client TLS config")
	}
	if c := p.client; p.verifyNode && c.InsecureSkipVerify && c.VerifyPeerCertificate == nil && c.VerifyConnection == nil {
		// Anyone can make a certificate naming any node: unverified,
		// the name proves nothing.
		return p, Invalid("TLS VerifyNode with InsecureSkipVerify and no VerifyPeerCertificate or VerifyConnection: the node's certificate would not be verified")
	}
	if p.require {
		for _, a := range s.Listen {
			if !isSecure(a) {
				return p, Invalid("WithListen(%q): TLS is required (WithRequireTLS or the registry's TLSPolicy.Require): listen on tls+tcp:// or wss://", a)
			}
		}
		for _, a := range s.Dial {
			if !isSecure(a) {
				return p, Invalid("WithDial(%q): TLS is required (WithRequireTLS or the registry's TLSPolicy.Require): dial tls+tcp:// or wss://", a)
			}
		}
	}
	return p, nil
}

// checkListen refuses a plaintext listen when TLS is required.
func (p *policy) checkListen(addr string) error {
	if p.require && !isSecure(addr) {
		return fmt.Errorf("%w: listen %s: TLS is required, plaintext refused", spmesh.ErrInvalidOption, addr)
	}
	return nil
}

// checkDial refuses a plaintext static dial when TLS is required.
func (p *policy) checkDial(addr string) error {
	if p.require && !isSecure(addr) {
		return fmt.Errorf("%w: dial %s: TLS is required, plaintext refused", spmesh.ErrInvalidOption, addr)
	}
	return nil
}

// refuse says why a discovered endpoint must not be dialed, or "" when it
// may be.
func (p *policy) refuse(ep spmesh.Endpoint) string {
	local := ep.Node == "" || ep.Node == p.local
	switch {
	case isLocalOnly(ep.Addr) && !local:
		return fmt.Sprintf("a host-local address advertised by another node (%s)", ep.Node)
	case isSecure(ep.Addr):
		if p.client == nil {
			return "TLS endpoint and no TLS client config on this socket (WithTLS, or the registry's TLSPolicy.Client)"
		}
		if p.verifyNode && ep.Node == "" {
			return "TLS node verification is on and the endpoint names no node"
		}
		return ""
	case p.require:
		return "plaintext endpoint: TLS is required"
	case p.secure && !isLocalOnly(ep.Addr):
		return "plaintext endpoint: this socket has TLS configured (no downgrade)"
	}
	return ""
}

// listenConfig is the TLS config for a listener on addr.
func (p *policy) listenConfig(addr string) *tls.Config {
	if isSecure(addr) {
		return p.server
	}
	return nil
}

// dialConfig is the TLS config for a dial to addr advertised by node
// ("" for a static dial): with verifyNode, a clone that requires the
// server's certificate to name node.
func (p *policy) dialConfig(addr, node string) *tls.Config {
	if !isSecure(addr) || p.client == nil {
		return nil
	}
	if !p.verifyNode || node == "" {
		return p.client
	}
	c := p.client.Clone()
	c.ServerName = node // standard verification checks the name; SNI tells the server
	inner := c.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := verifyNode(cs, node); err != nil {
			return err
		}
		if inner != nil {
			return inner(cs)
		}
		return nil
	}
	return c
}

// ErrWrongNode means the certificate presented at an endpoint does not name
// the node that advertised it.
var ErrWrongNode = errors.New("spmesh: certificate does not name the advertising node")

// verifyNode checks that the peer's leaf certificate names node (a DNS
// SAN, wildcards as in TLS host names), whatever InsecureSkipVerify says.
func verifyNode(cs tls.ConnectionState, node string) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w %q: no certificate", ErrWrongNode, node)
	}
	leaf := cs.PeerCertificates[0]
	if err := leaf.VerifyHostname(node); err != nil {
		var he x509.HostnameError
		if errors.As(err, &he) {
			return fmt.Errorf("%w %q: it names %v", ErrWrongNode, node, leaf.DNSNames)
		}
		return fmt.Errorf("%w %q: %v", ErrWrongNode, node, err)
	}
	return nil
}

// refused counts and logs a discovered endpoint the policy refused.
func (so *Socket) refused(ep spmesh.Endpoint, why string) {
	so.C.EndpointsRefused.Add(1)
	so.C.SetLastError(ep.Addr, errors.New("endpoint refused: "+why))
	so.logWarn(ep.Addr, "spmesh: discovered endpoint refused", logx.Service, ep.Service,
		logx.Endpoint, ep.Addr, logx.Node, ep.Node, logx.Reason, why)
}
