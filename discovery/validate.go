package discovery

import (
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/spmesh/spmesh"
)

// What a remote member may make this node's sockets dial. Every endpoint
// a member advertises is checked here when its records arrive, before any
// watcher sees it; refused ones are counted (Stats.EndpointsRefused) and
// logged once per member per 10 s.

// Reasons an endpoint is refused.
var (
	errScheme    = errors.New("scheme not allowed from a remote member (want tcp://, tls+tcp://, ws:// or wss://)")
	errForm      = errors.New("malformed address")
	errHostName  = errors.New("host is not an IP address")
	errForbidden = errors.New("unspecified, link-local, multicast or cloud metadata address")
	errOtherHost = errors.New("host is not the member's own address (and not in Config.EndpointCIDRs)")
	errNameAddr  = errors.New("a name: address is only for the respondent role")
	errPerMember = errors.New("over Config.MaxEndpointsPerMember")
	errPerSvc    = errors.New("over Config.MaxEndpointsPerService")
)

// metadataAddrs are the cloud instance-metadata services outside the
// link-local ranges (AWS over IPv6, Alibaba Cloud). Never dialed, never
// gossiped with, whatever the allow-lists say.
var metadataAddrs = []netip.Prefix{
	netip.MustParsePrefix("fd00:ec2::254/128"),
	netip.MustParsePrefix("100.100.100.200/32"),
}

// forbiddenHost reports an address no member may point others at, even
// when allow-listed: unspecified, link-local (169.254.0.0/16, where the
// cloud metadata services live, and fe80::/10), multicast, broadcast and
// the metadata addresses.
func forbiddenHost(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return true
	}
	for _, p := range metadataAddrs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// remoteSchemes are the schemes a remote member may advertise: network
// transports only. ipc:// (a unix socket path) and inproc:// (a name inside
// the dialing process) name something on the dialer's own host, never the
// member's.
var remoteSchemes = map[string]bool{"tcp": true, "tls+tcp": true, "ws": true, "wss": true}

// checkRemoteEndpoint checks one endpoint advertised by a member whose
// gossip address is host; allowed are the extra host ranges
// (Config.EndpointCIDRs).
func checkRemoteEndpoint(ep spmesh.Endpoint, host netip.Addr, allowed []netip.Prefix) error {
	if strings.HasPrefix(ep.Addr, spmesh.NameAddrPrefix) {
		// A name, never dialed: respondents announce themselves so.
		if ep.Role != spmesh.RoleRespondent {
			return errNameAddr
		}
		return nil
	}
	i := strings.Index(ep.Addr, "://")
	if i <= 0 || !remoteSchemes[ep.Addr[:i]] {
		return errScheme
	}
	u, err := url.Parse(ep.Addr)
	if err != nil || u.User != nil || u.Opaque != "" || u.Host == "" || u.Fragment != "" {
		return errForm
	}
	if (u.Scheme == "tcp" || u.Scheme == "tls+tcp") && (u.Path != "" || u.RawQuery != "") {
		return errForm
	}
	h, p, err := net.SplitHostPort(u.Host)
	if err != nil {
		return errForm
	}
	if port, err := strconv.ParseUint(p, 10, 16); err != nil || port == 0 {
		return errForm
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return errHostName
	}
	if a.Zone() != "" {
		return errForm
	}
	a = a.Unmap()
	if forbiddenHost(a) {
		return errForbidden
	}
	if a == host.Unmap() {
		return nil
	}
	for _, pr := range allowed {
		if pr.Contains(a) {
			return nil
		}
	}
	return errOtherHost
}

// checkGossipAddr refuses a member whose gossip address would make this
// node probe or exchange state with an address no member may point at
// (see forbiddenHost).
func checkGossipAddr(ip net.IP, port uint16) error {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || port == 0 || forbiddenHost(a) {
		return errForbidden
	}
	return nil
}
