package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

type goneNode struct {
	addr  string
	at    time.Time
	left  bool
	tries int       // failed re-joins
	next  time.Time // next re-join
}

// leftWindow is how long a node that left gracefully is still re-joined.
const leftWindow = time.Minute

// maxRejoinBackoff caps the interval between re-joins of a gone member's
// address, in re-join intervals.
const maxRejoinBackoff = 32

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

// Advertise publishes ep (its Node field is set to this node's name) until
// withdraw is called; withdraw is idempotent. Peers see it within a gossip
// round or two. It fails with ErrClosed after Close or Leave, with
// ErrInvalidOption for an endpoint without service, role or address, and
// with ErrTooLarge past [MaxEndpoints] endpoints.
func (n *Node) Advertise(ep spmesh.Endpoint) (withdraw func(), err error) {
	ep.Node = n.name
	if err := checkEndpoint(ep); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.leaving {
		return nil, spmesh.ErrClosed
	}
	if len(n.local) >= MaxEndpoints {
		return nil, fmt.Errorf("%w: discovery: more than %d endpoints advertised", spmesh.ErrTooLarge, MaxEndpoints)
	}
	n.nextID++
	id := n.nextID
	n.local[id] = ep
	n.localChanged()
	var once sync.Once
	return func() {
		once.Do(func() {
			n.mu.Lock()
			defer n.mu.Unlock()
			if _, ok := n.local[id]; ok && !n.closed {
				delete(n.local, id)
				n.localChanged()
			}
		})
	}, nil
}

// localChanged recomputes the local set after n.local changed: new
// generation and metadata, events, watchers, and a metadata push. Called
// with n.mu held.
func (n *Node) localChanged() {
	eps := make([]spmesh.Endpoint, 0, len(n.local))
	for _, ep := range n.local {
		eps = append(eps, ep)
	}
	sortEndpoints(eps)
	eps = slices.Compact(eps)
	old := n.localEps
	n.localEps = eps
	n.gen++
	n.meta = encodeDigest(n.gen, len(eps), n.flags(), hintsOf(shareable(eps)))
	n.diff(n.name, n.addr, old, eps)
	select {
	case n.kickMeta <- struct{}{}:
	default:
	}
}

// Watch reports the endpoints of service in role across the mesh,
// including this node's own: the current set at once, then the full set
// after every change. Snapshots are coalesced (a slow reader sees only the
// latest) and never block gossip. The channel is closed after stop (which
// is idempotent) or Close.
func (n *Node) Watch(service string, role spmesh.Role) (<-chan []spmesh.Endpoint, func(), error) {
	if service == "" || role == "" {
		return nil, nil, fmt.Errorf("%w: watch needs a service and a role", spmesh.ErrInvalidOption)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, nil, spmesh.ErrClosed
	}
	k := key{service, role}
	w := n.hub.add(k, n.snapshot(k))
	n.kick(n.kickFetch) // pull the records of the members that serve it
	return w.ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.hub.remove(k, w)
	}, nil
}

// Endpoints returns every endpoint of service in role known now (all roles
// when role is empty), sorted by node then address.
func (n *Node) Endpoints(service string, role spmesh.Role) []spmesh.Endpoint {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.wanted[service] && len(n.wanted) < maxWanted {
		n.wanted[service] = true
		n.kick(n.kickFetch)
	}
	return n.snapshot(key{service, role})
}

// maxWanted bounds the services Endpoints remembers as wanted; past it,
// every member's records are wanted.
const maxWanted = 1024

// snapshot collects the endpoints matching k (any role when k.role is
// empty). Called with n.mu held.
func (n *Node) snapshot(k key) []spmesh.Endpoint {
	var out []spmesh.Endpoint
	add := func(eps []spmesh.Endpoint) {
		for _, ep := range eps {
			if ep.Service == k.service && (k.role == "" || ep.Role == k.role) {
				out = append(out, ep)
			}
		}
	}
	add(n.localEps)
	for _, p := range n.peers {
		add(p.eps)
	}
	sortEndpoints(out)
	return out
}

// Member is one node of the mesh as this node knows it.
type Member struct {
	Name      string
	Addr      string // gossip address, host:port
	Local     bool   // this node
	Endpoints []spmesh.Endpoint
	// Complete is false while the node's full records are being fetched
	// (Endpoints then holds the previous set).
	Complete bool
}

// Members returns the live members, this node included, sorted by name.
// After Close it returns nil.
func (n *Node) Members() []Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	if !n.wantAll {
		n.wantAll = true
		n.kick(n.kickFetch)
	}
	out := []Member{{Name: n.name, Addr: n.addr, Local: true, Endpoints: slices.Clone(n.localEps), Complete: true}}
	for _, p := range n.peers {
		out = append(out, Member{Name: p.node.Name, Addr: p.addr, Endpoints: slices.Clone(p.eps), Complete: p.full})
	}
	slices.SortFunc(out, func(a, b Member) int { return cmpString(a.Name, b.Name) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Events returns the node's event channel (the same channel every call).
// From the first call on, the node pulls every member's records (not only
// those of the services it uses), so that service events cover every
// service. The node owns the channel and closes it at Close. Events that do not fit its
// buffer (Config.EventBuffer) are dropped and counted by [Node.DroppedEvents]:
// gossip never waits for a reader.
func (n *Node) Events() <-chan Event {
	n.mu.Lock()
	if !n.wantAll {
		n.wantAll = true
		n.kick(n.kickFetch)
	}
	n.mu.Unlock()
	return n.events
}

// DroppedEvents is how many events were dropped because the Events channel
// was full.
func (n *Node) DroppedEvents() uint64 { return n.dropped.Load() }

// Join joins the mesh through addrs ("host:port") and reports how many
// answered. It returns ctx.Err() if ctx ends first (the attempt goes on in
// the background until TCPTimeout), and an error when none answered.
func (n *Node) Join(ctx context.Context, addrs ...string) (int, error) {
	type result struct {
		k   int
		err error
	}
	ch := make(chan result, 1)
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return 0, spmesh.ErrClosed
	}
	n.wg.Add(1) // under n.mu: never concurrent with Close's Wait at zero
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		k, err := n.join(addrs)
		if k > 0 {
			n.spreadJoined()
		}
		ch <- result{k, err}
	}()
	select {
	case r := <-ch:
		return r.k, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// join joins addrs concurrently; it never panics after Close. Its error
// names every address that failed and why.
func (n *Node) join(addrs []string) (int, error) {
	var (
		mu   sync.Mutex
		ok   int
		errs []error
		wg   sync.WaitGroup
	)
	for _, a := range addrs {
		wg.Go(func() {
			k, err := n.ml.Join([]string{a})
			mu.Lock()
			defer mu.Unlock()
			ok += k
			if err != nil && k == 0 {
				errs = append(errs, joinErr(a, err))
			}
		})
	}
	wg.Wait()
	if n.isClosed() {
		return ok, spmesh.ErrClosed
	}
	if ok == 0 && len(addrs) > 0 {
		return 0, fmt.Errorf("%w: discovery: no seed answered: %v", spmesh.ErrNoPeers, errors.Join(errs...))
	}
	return ok, nil
}

// joinErr names the seed and the cause of a failed join, with a hint when
// the seed hung up on us: memberlist drops a stream with another label or
// key without a word.
func joinErr(addr string, err error) error {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	msg = strings.TrimPrefix(msg, "1 error occurred: * ")
	if errors.Is(err, io.EOF) || strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset") {
		msg += " (the seed hung up: a different Config.Label or gossip key?)"
	}
	return fmt.Errorf("seed %s: %s", addr, msg)
}

// flags returns the metadata flags. Called with n.mu held.
func (n *Node) flags() uint64 {
	if n.leaving {
		return flagLeaving
	}
	return 0
}

func (n *Node) isClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}

// InstallKey adds a gossip key to the keyring (accepted for decryption, not
// yet used to encrypt). Rotation: InstallKey on every node, then UseKey on
// every node, then RemoveKey of the old key on every node. The keyring is
// this node's only: spread it to every node yourself.
func (n *Node) InstallKey(key []byte) error {
	return n.keyring(func(kr *memberlist.Keyring) error { return kr.AddKey(key) }, key)
}

// UseKey makes an installed key the one used to encrypt.
func (n *Node) UseKey(key []byte) error {
	return n.keyring(func(kr *memberlist.Keyring) error { return kr.UseKey(key) }, key)
}

// RemoveKey removes a key other than the one in use.
func (n *Node) RemoveKey(key []byte) error {
	return n.keyring(func(kr *memberlist.Keyring) error { return kr.RemoveKey(key) }, key)
}

// Keys returns the installed keys, the one in use first; nil without
// encryption.
func (n *Node) Keys() [][]byte {
	if n.kr == nil || n.isClosed() {
		return nil
	}
	return n.kr.GetKeys()
}

func (n *Node) keyring(f func(*memberlist.Keyring) error, key []byte) error {
	if n.isClosed() {
		return spmesh.ErrClosed
	}
	if !validKey(key) {
		return fmt.Errorf("%w: discovery: gossip key of %d bytes: want 16, 24 or 32", spmesh.ErrInvalidOption, len(key))
	}
	kr := n.kr // memberlist encrypts with this very keyring
	if kr == nil {
		return fmt.Errorf("%w: discovery: encryption was not enabled at start (Config.SecretKey)", spmesh.ErrInvalidOption)
	}
	if err := f(kr); err != nil {
		return fmt.Errorf("%w: discovery: keyring: %v", spmesh.ErrInvalidOption, err)
	}
	return nil
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

// emit queues an event, dropping it when nobody reads. Called with n.mu held.
func (n *Node) emit(ev Event) {
	if n.closed {
		return
	}
	ev.Time = time.Now()
	select {
	case n.events <- ev:
	default:
		n.dropped.Add(1)
	}
}

// diff reports the change of a node's endpoints from old to eps: service
// events, and new snapshots to the watchers of every service touched.
// Called with n.mu held; both slices sorted.
func (n *Node) diff(node, addr string, old, eps []spmesh.Endpoint) {
	changed := map[key]bool{}
	for _, ep := range old {
		if _, found := slices.BinarySearchFunc(eps, ep, cmpEndpoint); !found {
			changed[key{ep.Service, ep.Role}] = true
			n.emit(Event{Type: EventServiceRemoved, Node: node, Addr: addr, Endpoint: ep})
		}
	}
	for _, ep := range eps {
		if _, found := slices.BinarySearchFunc(old, ep, cmpEndpoint); !found {
			changed[key{ep.Service, ep.Role}] = true
			n.emit(Event{Type: EventServiceAdded, Node: node, Addr: addr, Endpoint: ep})
		}
	}
	for k := range changed {
		if n.hub.watched(k) {
			n.hub.publish(k, n.snapshot(k))
		}
	}
}

// metaLoop pushes metadata changes to memberlist outside any lock of ours,
// coalescing bursts of Advertise calls into one update.
func (n *Node) metaLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		case <-n.kickMeta:
		}
		// UpdateNode waits until the change is gossiped (or the timeout).
		n.metaMu.Lock()
		_ = n.guard(func() error { return n.ml.UpdateNode(n.cfg.GossipInterval) })
		n.metaMu.Unlock()
		n.kick(n.kickFetch) // peers that asked for older records get the new ones
		n.spread()
	}
}

// spreadJoined spreads this node's endpoints after a join: the joined
// seeds got them in the exchange, but the members the join just revealed
// would hear of them only through the seeds' gossip (see spread), or at the
// next push/pull. Endpoints advertised while the join ran are covered too.
func (n *Node) spreadJoined() {
	n.mu.Lock()
	some := len(n.localEps) > 0
	n.mu.Unlock()
	if some {
		n.spread()
	}
}

// spreadAll is the mesh size up to which a local change is handed to every
// live peer by a state exchange; in larger meshes spreadSome random peers
// get it that way, and gossip carries it on.
const (
	spreadAll  = 32
	spreadSome = 4
)

// spread hands this node's state (its new metadata) to live peers by a
// push/pull exchange over TCP, in the background. memberlist gossips a
// metadata change to a few random members a few times only; members that
// stopped answering but are not yet declared dead (a worker just killed)
// take their share of those transmissions, so a live peer can miss the
// change until the next push/pull, PushPullInterval later. The exchange
// reaches each live peer for sure. At most one spread runs at a time; a
// change made during one starts another after it (its exchanges carry the
// state of their time).
func (n *Node) spread() {
	n.mu.Lock()
	if n.closed || n.leaving {
		n.mu.Unlock()
		return
	}
	if n.spreading {
		n.spreadAgain = true
		n.mu.Unlock()
		return
	}
	addrs := make([]string, 0, len(n.peers))
	for _, p := range n.peers {
		if !p.leaving {
			addrs = append(addrs, p.addr)
		}
	}
	if len(addrs) == 0 {
		n.mu.Unlock()
		return
	}
	if len(addrs) > spreadAll {
		rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
		addrs = addrs[:spreadSome]
	}
	n.spreading = true
	n.wg.Add(1) // under n.mu: never concurrent with Close's Wait at zero
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		_, err := n.join(addrs)
		if err != nil && !errors.Is(err, spmesh.ErrClosed) {
			n.log.Debug("spmesh: discovery: spread state", "err", err)
		}
		n.mu.Lock()
		n.spreading = false
		again := n.spreadAgain
		n.spreadAgain = false
		n.mu.Unlock()
		if again {
			n.spread()
		}
	}()
}

func (n *Node) kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// pullLoop pulls members' records (see exchange.go): from members whose
// metadata announced a gen this node has not pulled, from members never
// pulled, and every refresh from members with watched endpoints (a
// liveness check). It runs on kicks and on a timer that retries failed
// pulls.
func (n *Node) pullLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.wantRetry)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-n.kickFetch:
		case <-t.C:
		}
		type job struct {
			p    *peer
			name string
			addr string
		}
		var jobs []job
		now := time.Now()
		n.mu.Lock()
		interest := n.interest()
		for _, p := range n.peers {
			if p.pulling || now.Before(p.nextPull) {
				continue
			}
			stale := !p.pulled || p.recGen < p.gen
			if stale && interested(p, interest) || (p.pulled && now.Sub(p.lastPull) >= n.refresh && n.watchedPeer(p)) {
				p.pulling = true
				jobs = append(jobs, job{p, p.node.Name, p.addr})
			}
		}
		n.mu.Unlock()
		for _, j := range jobs {
			select {
			case <-n.done:
				n.mu.Lock()
				j.p.pulling = false
				n.mu.Unlock()
				return
			case n.sends <- struct{}{}:
			}
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				defer func() { <-n.sends }()
				gen, eps, err := n.pull(j.name, j.addr, n.pullTimeout)
				n.pulled(j.p, gen, eps, err)
			}()
		}
	}
}

// interest returns the hints of the services this node uses (watched,
// or asked for by Endpoints), nil when it wants every member's records.
// Called with n.mu held.
func (n *Node) interest() map[uint32]bool {
	if n.wantAll || len(n.wanted) >= maxWanted {
		return nil
	}
	m := map[uint32]bool{}
	for s := range n.wanted {
		m[serviceHint(s)] = true
	}
	for k := range n.hub.watches {
		m[serviceHint(k.service)] = true
	}
	return m
}

// interested reports whether p's records are wanted: it serves a service
// of interest, or it gave no hints, or everything is wanted (interest
// nil).
func interested(p *peer, interest map[uint32]bool) bool {
	if interest == nil || !p.hinted {
		return true
	}
	for _, h := range p.hints {
		if interest[h] {
			return true
		}
	}
	return false
}

// watchedPeer reports whether p has endpoints somebody watches. Called
// with n.mu held.
func (n *Node) watchedPeer(p *peer) bool {
	for _, ep := range p.eps {
		if n.hub.watched(key{ep.Service, ep.Role}) {
			return true
		}
	}
	return false
}

// pulled takes in the result of a pull from p.
func (n *Node) pulled(p *peer, gen uint64, eps []spmesh.Endpoint, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p.pulling = false
	if n.closed || n.peers[p.node.Name] != p {
		return // gone meanwhile: its records are not taken
	}
	now := time.Now()
	if err != nil {
		p.fails++
		// Back off (up to the refresh interval), so that members that do
		// not answer cannot keep every pull slot busy with timeouts.
		p.nextPull = now.Add(min(n.wantRetry<<min(p.fails-1, 6), max(n.refresh, n.wantRetry)))
		n.pullErrors.Add(1)
		var pe *exchangeError
		var ne *recordsNameError
		switch {
		case errors.As(err, &ne):
			n.recordsRefused.Add(1)
		case errors.As(err, &pe):
			n.handshakeErrors.Add(1)
		}
		n.setLastError(fmt.Errorf("records of %s (%s): %v", p.node.Name, p.addr, err))
		p.pullErr = fmt.Sprintf("%s: %v", p.addr, err)
		// Nobody listens there (its process is gone), or it cannot be
		// trusted: its endpoints go until it answers again. A timeout is
		// not taken as death (packet loss makes them): failure detection
		// decides.
		if errors.Is(err, syscall.ECONNREFUSED) || pe != nil || ne != nil {
			if len(p.eps) > 0 {
				n.log.Info("spmesh: discovery: member's records unavailable, its endpoints withdrawn until it answers", logx.Node, p.node.Name, logx.Remote, p.addr, logx.Err, err)
			}
			p.hidden = true
			n.setPeerEps(p, nil, p.full)
		}
		if pe != nil || ne != nil {
			n.logs.Log(n.log, slog.LevelWarn, p.node.Name, "spmesh: discovery: records refused", logx.Node, p.node.Name, logx.Remote, p.addr, logx.Err, err)
		}
		return
	}
	p.fails, p.pullErr = 0, ""
	same := p.pulled && !p.hidden && gen == p.recGen
	p.pulled, p.recGen, p.lastPull, p.hidden = true, gen, now, false
	if gen < p.gen {
		p.nextPull = now.Add(n.wantRetry) // the metadata announced a newer gen: pull again
	}
	if same {
		p.full = gen >= p.gen // a liveness check: the records are those listed
		return
	}
	n.setPeerEps(p, n.admit(p, eps), gen >= p.gen)
}

// admit keeps the endpoints of member p that pass the checks of
// checkRemoteEndpoint and the caps (Config.MaxEndpointsPerMember, and
// Config.MaxEndpointsPerService counting the other members' endpoints);
// refusals are counted and logged once per member per 10 s. Called with
// n.mu held; eps sorted.
func (n *Node) admit(p *peer, eps []spmesh.Endpoint) []spmesh.Endpoint {
	out := make([]spmesh.Endpoint, 0, min(len(eps), n.cfg.MaxEndpointsPerMember))
	var refused int
	var first error
	var firstEp spmesh.Endpoint
	refuse := func(ep spmesh.Endpoint, err error) {
		if refused == 0 {
			first, firstEp = err, ep
		}
		refused++
	}
	var perKey map[key]int
	for _, ep := range eps {
		if err := checkRemoteEndpoint(ep, p.ip, n.cfg.EndpointCIDRs); err != nil {
			refuse(ep, err)
			continue
		}
		if len(out) >= n.cfg.MaxEndpointsPerMember {
			refuse(ep, errPerMember)
			continue
		}
		k := key{ep.Service, ep.Role}
		if perKey == nil {
			perKey = map[key]int{}
		}
		if _, ok := perKey[k]; !ok {
			perKey[k] = n.countOthers(p, k)
		}
		if perKey[k] >= n.cfg.MaxEndpointsPerService {
			refuse(ep, errPerSvc)
			continue
		}
		perKey[k]++
		out = append(out, ep)
	}
	if refused > 0 {
		n.endpointsRefused.Add(uint64(refused))
		err := fmt.Errorf("%d endpoints of %s refused, e.g. %s %s %q: %v", refused, p.node.Name, firstEp.Service, firstEp.Role, firstEp.Addr, first)
		n.setLastError(err)
		n.logs.Log(n.log, slog.LevelWarn, p.node.Name, "spmesh: discovery: endpoints refused", logx.Node, p.node.Name, logx.Remote, p.addr,
			"refused", refused, logx.Service, firstEp.Service, logx.Role, firstEp.Role, logx.Endpoint, firstEp.Addr, logx.Reason, first)
	}
	return out
}

// countOthers counts the endpoints of k held by members other than p.
// Called with n.mu held.
func (n *Node) countOthers(p *peer, k key) int {
	c := 0
	for _, q := range n.peers {
		if q == p {
			continue
		}
		for _, ep := range q.eps {
			if ep.Service == k.service && ep.Role == k.role {
				c++
			}
		}
	}
	return c
}

func (n *Node) setLastError(err error) {
	s := err.Error()
	n.lastErr.Store(&s)
}

// rejoinLoop joins the seeds at start, retrying until one answers, then
// every RejoinInterval re-joins seeds and recently gone peers that are not
// members now, so that a mesh split for longer than DeadTimeout merges.
func (n *Node) rejoinLoop() {
	defer n.wg.Done()
	joined := len(n.cfg.Seeds) == 0
	if !joined {
		if _, err := n.join(n.cfg.Seeds); err == nil {
			joined = true
			n.spreadJoined()
		} else if !errors.Is(err, spmesh.ErrClosed) {
			n.log.Warn("spmesh: discovery: join seeds (retrying in the background)", "err", err)
		}
	}
	if n.cfg.RejoinInterval < 0 {
		return
	}
	t := time.NewTicker(n.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		}
		addrs := n.rejoinTargets(time.Now())
		if len(addrs) == 0 {
			continue
		}
		k, err := n.join(addrs)
		if errors.Is(err, spmesh.ErrClosed) {
			return
		}
		if k > 0 {
			n.spreadJoined()
		}
		if k > 0 && !joined {
			joined = true
			n.log.Info("spmesh: discovery: joined", "answered", k)
		}
	}
}

// rejoinTargets lists the seeds and the recently gone peers' addresses that
// are not live members now.
func (n *Node) rejoinTargets(now time.Time) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.leaving || n.closed {
		return nil
	}
	live := map[string]bool{n.addr: true}
	for _, p := range n.peers {
		live[p.addr] = true
	}
	seen := map[string]bool{}
	var out []string
	add := func(a string) {
		if !live[a] && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, s := range n.cfg.Seeds {
		add(s)
	}
	for name, g := range n.gone {
		window := n.cfg.RejoinWindow
		if g.left {
			window = min(window, leftWindow)
		}
		if now.Sub(g.at) > window {
			delete(n.gone, name)
			continue
		}
		if now.Before(g.next) {
			continue
		}
		// Back off: a gone member's address may be anybody's now (or
		// never was the member's), so it gets fewer and fewer dials, up
		// to one every maxRejoinBackoff re-join intervals.
		g.tries++
		g.next = now.Add(n.cfg.RejoinInterval * time.Duration(min(1<<min(g.tries-1, 10), maxRejoinBackoff)))
		n.gone[name] = g
		add(g.addr)
	}
	return out
}

// setPeerEps replaces a peer's endpoints. Called with n.mu held.
func (n *Node) setPeerEps(p *peer, eps []spmesh.Endpoint, full bool) {
	old := p.eps
	p.eps, p.full = eps, full
	n.diff(p.node.Name, p.addr, old, eps)
}

// applyMeta takes in a peer's (new) metadata: a digest of its records,
// which are pulled from the peer itself when the digest announces a gen
// not pulled yet. Endpoints in the metadata (older versions put them
// there) are never taken: metadata is relayed by gossip. Called with n.mu
// held.
func (n *Node) applyMeta(p *peer, b []byte) {
	m, err := decodeMeta(p.node.Name, b)
	if err != nil {
		n.recordsRefused.Add(1)
		n.logs.Log(n.log, slog.LevelWarn, p.node.Name, "spmesh: discovery: ignoring peer metadata", logx.Node, p.node.Name, logx.Err, err)
		return
	}
	p.gen = m.gen
	p.hints, p.hinted = m.hints, m.hinted
	p.leaving = m.flags&flagLeaving != 0
	if p.leaving {
		n.setPeerEps(p, nil, true)
		return
	}
	if p.pulled && p.recGen >= m.gen {
		p.full = true // the records pulled are those of this gen or newer
		return
	}
	p.full = false
	if !p.pulling {
		p.nextPull = time.Time{}
	}
	n.kick(n.kickFetch)
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

// Stats are the node's counters, all cumulative since New.
type Stats struct {
	// EndpointsRefused counts endpoints advertised by other members that
	// this node did not list (so no socket wired through it dials them):
	// a scheme other than tcp://, tls+tcp://, ws://, wss:// (ipc:// and
	// inproc:// name things on the dialer's own host); a host that is not
	// an IP, not the member's own gossip IP and not in
	// Config.EndpointCIDRs; an unspecified, link-local (169.254.0.0/16,
	// fe80::/10), multicast or cloud metadata address; past
	// Config.MaxEndpointsPerMember or Config.MaxEndpointsPerService.
	EndpointsRefused uint64
	// RecordsRefused counts records refused because they did not come
	// from the node they name: a member answering a pull with another's
	// name, records sent in a message or a push/pull exchange (anyone
	// could relay or forge those), undecodable metadata.
	RecordsRefused uint64
	// MembersRefused counts alive messages refused for the member's gossip
	// address (unspecified, link-local, multicast, cloud metadata).
	MembersRefused uint64
	// HandshakeErrors counts records exchanges, pulled or served, that
	// failed to authenticate: TLS handshake, certificate not naming the
	// node (TLS.VerifyNode), gossip key, label, or a mode this node does
	// not accept (plaintext with a key or TLS.Require).
	HandshakeErrors uint64
	// PullErrors counts failed records pulls of any cause (including
	// members that stopped answering).
	PullErrors uint64
	// GossipRefused counts gossip refused: TCP streams from outside
	// Config.CIDRsAllowed (logged with the address), and what memberlist
	// discarded for a wrong label, a key that does not decrypt it, or an
	// address outside CIDRsAllowed (memberlist logs each with the peer's
	// address).
	GossipRefused uint64
	// DroppedEvents is [Node.DroppedEvents].
	DroppedEvents uint64
	// LastError describes the latest refusal or failure counted above.
	LastError string
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	st := Stats{
		EndpointsRefused: n.endpointsRefused.Load(),
		RecordsRefused:   n.recordsRefused.Load(),
		MembersRefused:   n.membersRefused.Load(),
		HandshakeErrors:  n.handshakeErrors.Load(),
		PullErrors:       n.pullErrors.Load(),
		GossipRefused:    n.gossipRefused.Load(),
		DroppedEvents:    n.dropped.Load(),
	}
	if p := n.lastErr.Load(); p != nil {
		st.LastError = *p
	}
	return st
}

// PullFailures returns, for every member whose latest records pull
// failed, why (keyed by member name). Such a member's services are not
// known here until a pull succeeds, so this is what to show a user who
// cannot find a service (Stats.LastError holds only the latest failure
// of any kind, and a refusal of someone else's pull overwrites it).
func (n *Node) PullFailures() map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var m map[string]string
	for name, p := range n.peers {
		if p.pullErr != "" {
			if m == nil {
				m = map[string]string{}
			}
			m[name] = p.pullErr
		}
	}
	return m
}

// EndpointsRefused is Stats().EndpointsRefused, for sockets that surface
// it in their own Stats without importing this package (a type assertion
// to interface{ EndpointsRefused() uint64 }).
func (n *Node) EndpointsRefused() uint64 { return n.endpointsRefused.Load() }

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
