package discovery

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spmesh/spmesh"
)

// DefaultPort is the gossip port of [LANConfig].
const DefaultPort = 7946

// Config configures a [Node]. Start from [LANConfig] or [LocalConfig] and
// change what you need: [New] rejects zero timings rather than guessing.
type Config struct {
	// Name is the node's name in the mesh; it must be unique. Empty picks
	// the hostname plus a short random suffix, so several processes on one
	// host never collide. A node restarted under the same name on a new
	// address is accepted once its old incarnation is known dead
	// (see ReclaimAfter).
	Name string

	// BindAddr and BindPort are where gossip listens (UDP and TCP on the
	// same port). Port 0 picks a free port; [Node.Addr] reports the real one.
	// An empty BindAddr binds to AdvertiseAddr when that is an address of
	// this host, else to every interface (0.0.0.0).
	BindAddr string
	BindPort int

	// AdvertiseAddr and AdvertisePort are what peers are told to reach this
	// node on, when not the bound address (NAT, a bind to 0.0.0.0). Empty
	// and 0 derive them from the bind: a bind to 0.0.0.0 advertises the
	// first private IP of the host. Binders listen on AdvertiseAddr.
	AdvertiseAddr string
	AdvertisePort int

	// Seeds are "host:port" addresses (a bare "host" means this node's own
	// gossip port) joined at start. When none answers, the node keeps retrying every RejoinInterval
	// in the background; New never blocks on them.
	Seeds []string

	// CIDRsAllowed, when not empty, is the only address ranges gossip is
	// accepted from (and members are accepted at): packets and streams from
	// elsewhere are refused by memberlist and logged. Empty accepts any
	// address.
	CIDRsAllowed []netip.Prefix

	// EndpointCIDRs are the hosts, besides its own gossip IP, that a member
	// may advertise endpoints on (a binder listening on another interface
	// of its host, or a load balancer). Endpoints elsewhere are refused
	// (counted in Stats.EndpointsRefused); unspecified, link-local,
	// multicast and cloud metadata addresses are refused even when listed.
	EndpointCIDRs []netip.Prefix

	// MaxEndpointsPerMember caps the endpoints this node lists for one
	// other member, and MaxEndpointsPerService those of one service and
	// role across all other members (this node's own are not counted).
	// The endpoints past a cap are refused and counted. Defaults 64 and
	// 256.
	MaxEndpointsPerMember  int
	MaxEndpointsPerService int

	// Label separates meshes sharing a network: packets of a mesh with
	// another label are refused. At most 255 bytes.
	Label string

	// SecretKey turns on gossip encryption (AES-GCM) with a key of 16, 24
	// or 32 bytes. All nodes of a mesh need a common key. Without one,
	// anyone who reaches the gossip port can join and advertise (New logs
	// a warning). The records exchange is sealed with it too. ExtraKeys are
	// also accepted for decryption (key rotation: see [Node.InstallKey]).
	// Encryption cannot be turned on later for a node started without it.
	SecretKey []byte
	ExtraKeys [][]byte

	// TLS is the transport security of every socket wired through this
	// node with WithDiscovery: binders listen on tls+tcp:// with TLS.Server
	// and advertise it, connectors dial with TLS.Client, and TLS.Require
	// refuses plaintext endpoints (see [spmesh.TLSPolicy]). The records
	// exchange (how nodes learn each other's endpoints) runs over TLS with
	// it too, and with TLS.VerifyNode a member's certificate must name it.
	// The zero value is plaintext.
	TLS spmesh.TLSPolicy

	// Logger receives memberlist's and the node's logs (silent when nil).
	Logger *slog.Logger

	// GossipInterval is how often gossip messages go out to GossipNodes
	// random peers. Shorter spreads changes faster at a bandwidth cost.
	GossipInterval time.Duration
	GossipNodes    int

	// ProbeInterval and ProbeTimeout drive failure detection: every
	// interval a random peer is probed and must answer within the timeout
	// (else it is probed indirectly, then suspected).
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration

	// SuspicionMult scales how long a suspected node has to refute before
	// it is declared failed: SuspicionMult * log10(nodes) * ProbeInterval.
	SuspicionMult int

	// PushPullInterval is how often full state is exchanged with a random
	// peer over TCP (the anti-entropy backstop). 0 disables it.
	PushPullInterval time.Duration

	// DeadTimeout is how long a failed or departed node is still gossiped
	// about before being forgotten (memberlist's GossipToTheDeadTime).
	// A partition longer than this does not heal by itself; the node's
	// periodic re-join (RejoinInterval) heals it.
	DeadTimeout time.Duration

	// TCPTimeout bounds a TCP exchange with one peer (joins, push/pull,
	// fetching a peer's full service records).
	TCPTimeout time.Duration

	// RejoinInterval is how often the node re-joins the seeds that are not
	// live members (by address; seeds given by host name are always
	// re-joined) and the addresses of peers that failed within RejoinWindow
	// (and peers that left within the last minute), so that split meshes
	// merge again. A gone peer's address is re-joined less and less often
	// (the interval doubles, up to 32 RejoinIntervals): it may be somebody
	// else's by now. Each re-join is one TCP state exchange. Negative
	// disables re-joining (and the retry of seeds).
	RejoinInterval time.Duration
	RejoinWindow   time.Duration

	// ReclaimAfter is how long after a node is declared failed its name may
	// come back from another address (a restart on a new address). A node
	// that left gracefully may come back at once.
	ReclaimAfter time.Duration

	// LeaveTimeout bounds how long Leave waits for its departure to be
	// gossiped when its context has no deadline.
	LeaveTimeout time.Duration

	// EventBuffer is the capacity of the channel returned by [Node.Events].
	// Events that do not fit are dropped and counted, never waited for.
	EventBuffer int
}

// LANConfig returns a configuration for nodes on one data-center network:
// gossip on port DefaultPort of every interface (of AdvertiseAddr only, when
// it is set to an address of this host), no encryption (set SecretKey), memberlist's LAN timings
// (failure noticed in a few seconds), re-join every 10 s. Several nodes on
// one host need distinct ports: set BindPort to 0 (a free port) and hand
// [Node.Addr] to the others, or give each its own port.
func LANConfig() Config {
	return Config{
		BindPort:         DefaultPort,
		GossipInterval:   200 * time.Millisecond,
		GossipNodes:      3,
		ProbeInterval:    time.Second,
		ProbeTimeout:     500 * time.Millisecond,
		SuspicionMult:    4,
		PushPullInterval: 30 * time.Second,
		DeadTimeout:      30 * time.Second,
		TCPTimeout:       10 * time.Second,
		RejoinInterval:   10 * time.Second,
		RejoinWindow:     24 * time.Hour,
		ReclaimAfter:     10 * time.Second,
		LeaveTimeout:     5 * time.Second,
		EventBuffer:      256,

		MaxEndpointsPerMember:  64,
		MaxEndpointsPerService: 256,
	}
}

// LocalConfig returns a configuration for nodes on one machine (tests over
// loopback): bound to 127.0.0.1 on a free port, with fast timings.
func LocalConfig() Config {
	c := LANConfig()
	c.BindAddr = "127.0.0.1"
	c.BindPort = 0
	c.GossipInterval = 50 * time.Millisecond
	c.GossipNodes = 4
	c.ProbeInterval = 500 * time.Millisecond
	c.ProbeTimeout = 250 * time.Millisecond
	c.SuspicionMult = 3
	c.PushPullInterval = 2 * time.Second
	c.DeadTimeout = 5 * time.Second
	c.TCPTimeout = 2 * time.Second
	c.RejoinInterval = time.Second
	c.ReclaimAfter = time.Second
	c.LeaveTimeout = 2 * time.Second
	return c
}

// check validates c and fills the name.
func (c *Config) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: discovery: "+format, append([]any{spmesh.ErrInvalidOption}, args...)...)
	}
	if c.Name == "" {
		c.Name = DefaultName()
	}
	switch {
	case len(c.Name) > 255:
		return bad("node name longer than 255 bytes")
	case c.BindPort < 0 || c.BindPort > 65535:
		return bad("bind port %d", c.BindPort)
	case c.AdvertisePort < 0 || c.AdvertisePort > 65535:
		return bad("advertise port %d", c.AdvertisePort)
	case c.BindAddr != "" && net.ParseIP(c.BindAddr) == nil:
		return bad("bind address %q is not an IP", c.BindAddr)
	case c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil:
		return bad("advertise address %q is not an IP", c.AdvertiseAddr)
	case len(c.Label) > 255:
		return bad("label longer than 255 bytes")
	case c.GossipInterval <= 0 || c.GossipNodes <= 0:
		return bad("gossip interval %v, nodes %d", c.GossipInterval, c.GossipNodes)
	case c.ProbeInterval <= 0 || c.ProbeTimeout <= 0 || c.ProbeTimeout > c.ProbeInterval:
		return bad("probe interval %v, timeout %v", c.ProbeInterval, c.ProbeTimeout)
	case c.SuspicionMult <= 0:
		return bad("suspicion multiplier %d", c.SuspicionMult)
	case c.PushPullInterval < 0 || c.DeadTimeout <= 0 || c.TCPTimeout <= 0:
		return bad("push/pull %v, dead timeout %v, TCP timeout %v", c.PushPullInterval, c.DeadTimeout, c.TCPTimeout)
	case c.RejoinInterval == 0 || c.RejoinWindow < 0 || c.ReclaimAfter <= 0 || c.LeaveTimeout <= 0:
		return bad("rejoin interval %v, window %v, reclaim %v, leave timeout %v", c.RejoinInterval, c.RejoinWindow, c.ReclaimAfter, c.LeaveTimeout)
	case c.EventBuffer < 0:
		return bad("event buffer %d", c.EventBuffer)
	case c.MaxEndpointsPerMember <= 0:
		return bad("MaxEndpointsPerMember %d: want at least 1", c.MaxEndpointsPerMember)
	case c.MaxEndpointsPerService <= 0:
		return bad("MaxEndpointsPerService %d: want at least 1", c.MaxEndpointsPerService)
	}
	for _, p := range c.CIDRsAllowed {
		if !p.IsValid() {
			return bad("CIDRsAllowed: invalid prefix %v", p)
		}
	}
	for _, p := range c.EndpointCIDRs {
		if !p.IsValid() {
			return bad("EndpointCIDRs: invalid prefix %v", p)
		}
	}
	if err := checkTLSPolicy(c.TLS); err != nil {
		return err
	}
	for _, k := range append([][]byte{c.SecretKey}, c.ExtraKeys...) {
		if k != nil && !validKey(k) {
			return bad("gossip key of %d bytes: want 16, 24 or 32", len(k))
		}
	}
	if c.SecretKey == nil && len(c.ExtraKeys) > 0 {
		return bad("extra keys without a secret key")
	}
	for _, s := range c.Seeds {
		if strings.TrimSpace(s) == "" {
			return bad("empty seed address")
		}
	}
	return nil
}

// checkTLSPolicy refuses a policy that cannot work, naming the field: a
// Require with neither side configured (nothing could ever connect), a
// VerifyNode without the client side that would verify, and a server side
// without a certificate (every handshake would fail).
func checkTLSPolicy(p spmesh.TLSPolicy) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: discovery: "+format, append([]any{spmesh.ErrInvalidOption}, args...)...)
	}
	switch {
	case p.Require && p.Server == nil && p.Client == nil:
		return bad("TLS.Require without TLS.Server or TLS.Client: nothing could listen or dial")
	case p.VerifyNode && p.Client == nil:
		return bad("TLS.VerifyNode without TLS.Client: the dialing side verifies the node's certificate")
	case p.Server != nil && len(p.Server.Certificates) == 0 && p.Server.GetCertificate == nil && p.Server.GetConfigForClient == nil:
		return bad("TLS.Server has no certificate (Certificates, GetCertificate or GetConfigForClient)")
	}
	return nil
}

func validKey(k []byte) bool { return len(k) == 16 || len(k) == 24 || len(k) == 32 }

// DefaultName returns the hostname plus a dash and 6 random hex digits.
func DefaultName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	var b [3]byte
	rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}
