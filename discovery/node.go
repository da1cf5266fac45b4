package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/logx"
)

// Node is one member of a gossip mesh: it advertises this process's
// endpoints and learns everyone else's. It implements [spmesh.Registry], so
// any spmesh socket wires by service name through it. Build one with [New];
// end it with [Node.Leave] (graceful) or [Node.Close] (immediate).
type Node struct {
	cfg  Config
	log  *slog.Logger
	ml   *memberlist.Memberlist
	tr   *transport
	kr   *memberlist.Keyring // nil without encryption
	name string
	host string // advertise IP
	addr string // advertise host:port

	wantRetry time.Duration

	// metaMu serialises metadata pushes: a newer push invalidates an older
	// one still queued, and Leave's push must go out before its leave.
	metaMu sync.Mutex

	kickMeta  chan struct{}
	kickFetch chan struct{}
	done      chan struct{}
	wg        sync.WaitGroup
	sends     chan struct{} // bounds concurrent records pulls

	// Counters (see Stats).
	dropped          atomic.Uint64 // events nobody read
	endpointsRefused atomic.Uint64
	recordsRefused   atomic.Uint64
	membersRefused   atomic.Uint64
	handshakeErrors  atomic.Uint64
	pullErrors       atomic.Uint64
	gossipRefused    atomic.Uint64
	lastErr          atomic.Pointer[string]
	logs             logx.Limiter // every log of a refusal, per peer

	// refresh is how often the records of a member with watched endpoints
	// are pulled again (a liveness check: a member whose gossip port
	// refuses connections, its process gone, loses its endpoints within
	// DeadTimeout/4, however long failure detection takes); pullTimeout
	// bounds one pull.
	refresh, pullTimeout time.Duration

	// forge, when set (tests only), makes this node a rogue: it serves
	// the records forge returns instead of its own.
	forge func() (name string, eps []spmesh.Endpoint)

	mu       sync.Mutex
	closed   bool
	leaving  bool
	nextID   uint64
	local    map[uint64]spmesh.Endpoint
	localEps []spmesh.Endpoint // deduplicated and sorted
	gen      uint64
	meta     []byte
	peers    map[string]*peer
	gone     map[string]goneNode // by name: failed or left, for re-joins
	// spreading is set while spread's exchanges run; spreadAgain asks for
	// another round after them.
	spreading, spreadAgain bool
	hub                    hub
	events                 chan Event
	// Services this node uses: records are pulled from the members whose
	// hints name one (see interested). Endpoints adds its service for
	// good; Members makes every member's records wanted.
	wanted  map[string]bool
	wantAll bool
}

// peer is what this node knows of another member.
type peer struct {
	node memberlist.Node // a copy: name, address
	addr string
	ip   netip.Addr // its gossip IP: the host its endpoints must have
	gen  uint64     // from its metadata
	full bool       // eps is the set of gen
	eps  []spmesh.Endpoint

	leaving bool // it said it is leaving: its departure is a leave, not a failure

	// Records pulls (see pullLoop).
	recGen   uint64    // gen of the last records pulled
	pulled   bool      // records were pulled at least once
	lastPull time.Time // last successful pull
	nextPull time.Time // no pull before
	pulling  bool
	hints    []uint32 // its service hints (sorted), when hinted
	hinted   bool
	fails    int    // consecutive failed pulls
	pullErr  string // why the latest pull failed ("" after a success)
	hidden   bool   // its endpoints are withdrawn until a pull succeeds
}

// New starts a node: binds its gossip port, then joins cfg.Seeds in the
// background (see [Config]). Start from [LANConfig] or [LocalConfig].
func New(cfg Config) (*Node, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	n := &Node{
		cfg:         cfg,
		log:         lg.With("node", cfg.Name),
		name:        cfg.Name,
		wantRetry:   max(cfg.ProbeInterval/2, 100*time.Millisecond),
		refresh:     max(cfg.DeadTimeout/4, 100*time.Millisecond),
		pullTimeout: cfg.TCPTimeout,
		kickMeta:    make(chan struct{}, 1),
		kickFetch:   make(chan struct{}, 1),
		done:        make(chan struct{}),
		sends:       make(chan struct{}, 16),
		local:       map[uint64]spmesh.Endpoint{},
		gen:         uint64(time.Now().UnixNano()),
		peers:       map[string]*peer{},
		wanted:      map[string]bool{},
		gone:        map[string]goneNode{},
		hub:         newHub(),
		events:      make(chan Event, cfg.EventBuffer),
	}
	n.meta = encodeDigest(n.gen, 0, 0, []uint32{})

	std := newStdLogger(n.log, &n.gossipRefused, &n.logs)
	bind := cfg.BindAddr
	if bind == "" {
		bind = "0.0.0.0"
		if cfg.AdvertiseAddr != "" && localIP(cfg.AdvertiseAddr) {
			bind = cfg.AdvertiseAddr
		}
	}
	if cfg.SecretKey != nil {
		kr, err := memberlist.NewKeyring(cfg.ExtraKeys, cfg.SecretKey)
		if err != nil {
			return nil, fmt.Errorf("%w: discovery: keyring: %v", spmesh.ErrInvalidOption, err)
		}
		n.kr = kr
	} else {
		n.log.Warn("spmesh: discovery: gossip is not encrypted (no Config.SecretKey): anyone who reaches the gossip port can join the mesh and advertise endpoints")
	}
	tr, err := newTransport(bind, cfg.BindPort, std, n.serveExchange, n.allowedConn, cfg.TCPTimeout)
	if err != nil {
		return nil, err
	}
	n.tr = tr
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.BindAddr = bind
	mc.BindPort = tr.GetAutoBindPort()
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = mc.BindPort
	}
	mc.Transport = tr
	mc.Label = cfg.Label
	mc.GossipInterval = cfg.GossipInterval
	mc.GossipNodes = cfg.GossipNodes
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = cfg.ProbeTimeout
	mc.SuspicionMult = cfg.SuspicionMult
	mc.PushPullInterval = cfg.PushPullInterval
	mc.GossipToTheDeadTime = cfg.DeadTimeout
	mc.TCPTimeout = cfg.TCPTimeout
	mc.DeadNodeReclaimTime = cfg.ReclaimAfter
	mc.Logger = std
	mc.Delegate = (*mlDelegate)(n)
	mc.Events = (*mlEvents)(n)
	mc.Conflict = (*mlConflict)(n)
	mc.Alive = (*mlAlive)(n)
	if n.kr != nil {
		mc.Keyring = n.kr
	}
	for _, p := range cfg.CIDRsAllowed {
		mc.CIDRsAllowed = append(mc.CIDRsAllowed, net.IPNet{IP: p.Masked().Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())})
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		tr.Shutdown()
		return nil, fmt.Errorf("spmesh: discovery: start: %v", err)
	}
	n.ml = ml
	var self *memberlist.Node
	n.guard(func() error { self = ml.LocalNode(); return nil })
	if self == nil {
		// memberlist refused its own alive message: the node's address is
		// outside CIDRsAllowed.
		ml.Shutdown()
		return nil, fmt.Errorf("%w: discovery: CIDRsAllowed %v does not contain this node's own address", spmesh.ErrInvalidOption, cfg.CIDRsAllowed)
	}
	n.host = self.Addr.String()
	n.addr = net.JoinHostPort(n.host, strconv.Itoa(int(self.Port)))

	n.wg.Add(3)
	go n.metaLoop()
	go n.pullLoop()
	go n.rejoinLoop()
	return n, nil
}

// allowedConn refuses (and counts, and logs once per interval per address, see internal/logx) an
// incoming TCP connection from outside Config.CIDRsAllowed: memberlist
// itself checks only the addresses in alive messages.
func (n *Node) allowedConn(a net.Addr) bool {
	if len(n.cfg.CIDRsAllowed) == 0 {
		return true
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err == nil {
		for _, p := range n.cfg.CIDRsAllowed {
			if p.Contains(ap.Addr().Unmap()) {
				return true
			}
		}
	}
	n.gossipRefused.Add(1)
	n.setLastError(fmt.Errorf("connection from %s refused: not in Config.CIDRsAllowed", a))
	n.logs.Log(n.log, slog.LevelWarn, ap.Addr().String(), "spmesh: discovery: connection refused: not in Config.CIDRsAllowed", logx.Remote, a.String())
	return false
}

// Name returns the node's name in the mesh.
func (n *Node) Name() string { return n.name }

// TLSPolicy returns Config.TLS: the transport security of the sockets wired
// through this node.
func (n *Node) TLSPolicy() spmesh.TLSPolicy { return n.cfg.TLS }

var _ spmesh.SecureRegistry = (*Node)(nil)

// Addr returns the gossip address peers reach this node on (host:port, the
// real port when BindPort was 0): give it to other nodes as a seed.
func (n *Node) Addr() string { return n.addr }

// AdvertiseHost returns the IP peers reach this node on; binders wired
// through the node listen there.
func (n *Node) AdvertiseHost() string { return n.host }

func (n *Node) isClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}

// Leave leaves the mesh gracefully: it withdraws this node's endpoints,
// gossips its departure (waiting for it to go out until ctx's deadline, or
// Config.LeaveTimeout when ctx has none), then closes the node. Peers drop
// its endpoints at once instead of after failure detection. It returns
// ctx.Err() when ctx ended first, ErrClosed after Close; the node is closed
// in every case.
func (n *Node) Leave(ctx context.Context) error {
	n.mu.Lock()
	if n.closed || n.leaving {
		n.mu.Unlock()
		return spmesh.ErrClosed
	}
	n.leaving = true
	clear(n.local)
	n.localChanged()
	n.mu.Unlock()
	defer n.Close()

	timeout := n.cfg.LeaveTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if timeout <= 0 || ctx.Err() != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		return context.DeadlineExceeded
	}
	n.metaMu.Lock()
	err := n.guard(func() error {
		_ = n.ml.UpdateNode(timeout / 2)
		return n.ml.Leave(timeout / 2)
	})
	n.metaMu.Unlock()
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if err != nil && !errors.Is(err, spmesh.ErrClosed) {
		n.log.Warn("spmesh: discovery: leave", "err", err)
	}
	if errors.Is(err, spmesh.ErrClosed) {
		return err
	}
	return nil
}

// guard runs f, turning memberlist's panics on a shut-down list (Leave after
// Shutdown) into ErrClosed.
func (n *Node) guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: memberlist: %v", spmesh.ErrClosed, r)
		}
	}()
	return f()
}

// Close stops the node at once, without telling peers (they notice through
// failure detection): watchers' channels and the events channel close,
// gossip stops. It is idempotent; later calls on the node return ErrClosed.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	close(n.done)
	n.hub.close()
	close(n.events)
	n.mu.Unlock()
	n.tr.abort()
	err := n.ml.Shutdown()
	n.wg.Wait()
	if err != nil {
		return fmt.Errorf("spmesh: discovery: shutdown: %v", err)
	}
	return nil
}

func nodeAddr(nd *memberlist.Node) string {
	return net.JoinHostPort(nd.Addr.String(), strconv.Itoa(int(nd.Port)))
}

func copyNode(nd *memberlist.Node) memberlist.Node {
	c := *nd
	c.Addr = slices.Clone(nd.Addr)
	c.Meta = nil
	return c
}

// localIP reports whether ip is assigned to an interface of this host.
func localIP(ip string) bool {
	want, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if pn, ok := a.(*net.IPNet); ok {
			if got, ok := netip.AddrFromSlice(pn.IP); ok && got.Unmap() == want.Unmap() {
				return true
			}
		}
	}
	return false
}
