package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/spmesh/spmesh"
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
	inbox     chan []byte
	done      chan struct{}
	wg        sync.WaitGroup
	sends     chan struct{} // bounds concurrent TCP sends

	dropped   atomic.Uint64 // events nobody read
	inDropped atomic.Uint64 // messages that did not fit the inbox

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
	replyTo  map[string]bool     // peers that asked for our records
	// spreading is set while spread's exchanges run; spreadAgain asks for
	// another round after them.
	spreading, spreadAgain bool
	hub                    hub
	events                 chan Event
}

// peer is what this node knows of another member.
type peer struct {
	node memberlist.Node // a copy: name, address
	addr string
	gen  uint64 // from its metadata
	full bool   // eps is the set of gen
	eps  []spmesh.Endpoint

	leaving  bool   // it said it is leaving: its departure is a leave, not a failure
	recGen   uint64 // last records fetched
	recs     []spmesh.Endpoint
	lastWant time.Time
}

type goneNode struct {
	addr string
	at   time.Time
	left bool
}

// leftWindow is how long a node that left gracefully is still re-joined.
const leftWindow = time.Minute

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
		cfg:       cfg,
		log:       lg.With("node", cfg.Name),
		name:      cfg.Name,
		wantRetry: max(cfg.ProbeInterval, 200*time.Millisecond),
		kickMeta:  make(chan struct{}, 1),
		kickFetch: make(chan struct{}, 1),
		inbox:     make(chan []byte, 256),
		done:      make(chan struct{}),
		sends:     make(chan struct{}, 8),
		local:     map[uint64]spmesh.Endpoint{},
		gen:       uint64(time.Now().UnixNano()),
		peers:     map[string]*peer{},
		gone:      map[string]goneNode{},
		replyTo:   map[string]bool{},
		hub:       newHub(),
		events:    make(chan Event, cfg.EventBuffer),
	}
	n.meta = encodeMeta(n.gen, nil, 0, metaLimit)

	std := newStdLogger(n.log)
	bind := cfg.BindAddr
	if bind == "" {
		bind = "0.0.0.0"
	}
	tr, err := newTransport(bind, cfg.BindPort, std)
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
	if cfg.SecretKey != nil {
		kr, err := memberlist.NewKeyring(cfg.ExtraKeys, cfg.SecretKey)
		if err != nil {
			tr.Shutdown()
			return nil, fmt.Errorf("%w: discovery: keyring: %v", spmesh.ErrInvalidOption, err)
		}
		mc.Keyring, n.kr = kr, kr
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		tr.Shutdown()
		return nil, fmt.Errorf("spmesh: discovery: start: %v", err)
	}
	n.ml = ml
	self := ml.LocalNode()
	n.host = self.Addr.String()
	n.addr = net.JoinHostPort(n.host, strconv.Itoa(int(self.Port)))

	n.wg.Add(4)
	go n.metaLoop()
	go n.inboxLoop()
	go n.fetchLoop()
	go n.rejoinLoop()
	return n, nil
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
	n.meta = encodeMeta(n.gen, eps, n.flags(), metaLimit)
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
	return n.snapshot(key{service, role})
}

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
// The node owns it and closes it at Close. Events that do not fit its
// buffer (Config.EventBuffer) are dropped and counted by [Node.DroppedEvents]:
// gossip never waits for a reader.
func (n *Node) Events() <-chan Event { return n.events }

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

// join joins addrs concurrently; it never panics after Close.
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
			if err != nil {
				errs = append(errs, err)
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

// inboxLoop handles messages from peers, off memberlist's receive path.
func (n *Node) inboxLoop() {
	defer n.wg.Done()
	for {
		var b []byte
		select {
		case <-n.done:
			return
		case b = <-n.inbox:
		}
		if len(b) == 0 {
			continue
		}
		switch b[0] {
		case msgWant:
			from, err := decodeWant(b[1:])
			if err != nil {
				n.log.Debug("spmesh: discovery: bad want message", "err", err)
				continue
			}
			n.mu.Lock()
			if _, ok := n.peers[from]; ok {
				n.replyTo[from] = true
			}
			n.mu.Unlock()
			n.kick(n.kickFetch)
		case msgRecords:
			n.applyRecords(b[1:])
		default:
			n.log.Debug("spmesh: discovery: unknown message type", "type", b[0])
		}
	}
}

func (n *Node) applyRecords(b []byte) {
	node, gen, eps, err := decodeRecords(b)
	if err != nil {
		n.log.Debug("spmesh: discovery: bad records", "err", err)
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers[node]
	if p == nil || n.closed {
		return
	}
	p.recGen, p.recs = gen, eps
	if !p.full && p.gen == gen {
		n.setPeerEps(p, eps, true)
	}
}

// fetchLoop asks peers whose metadata overflowed for their full records,
// and answers such requests, over TCP. It runs on kicks and on a timer that
// retries unanswered requests.
func (n *Node) fetchLoop() {
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
		type send struct {
			to  memberlist.Node
			msg []byte
		}
		var out []send
		now := time.Now()
		n.mu.Lock()
		for _, p := range n.peers {
			if !p.full && now.Sub(p.lastWant) >= n.wantRetry {
				p.lastWant = now
				out = append(out, send{p.node, encodeWant(n.name)})
			}
		}
		if len(n.replyTo) > 0 {
			var b bytes.Buffer
			b.WriteByte(msgRecords)
			encodeRecords(&b, n.name, n.gen, n.localEps)
			for name := range n.replyTo {
				if p := n.peers[name]; p != nil {
					out = append(out, send{p.node, b.Bytes()})
				}
			}
			clear(n.replyTo)
		}
		n.mu.Unlock()
		for _, s := range out {
			select {
			case <-n.done:
				return
			case n.sends <- struct{}{}:
			}
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				defer func() { <-n.sends }()
				if err := n.guard(func() error { return n.ml.SendReliable(&s.to, s.msg) }); err != nil {
					n.log.Debug("spmesh: discovery: send", "to", s.to.Name, "err", err)
				}
			}()
		}
	}
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

// applyMeta takes in a peer's (new) metadata. Called with n.mu held.
func (n *Node) applyMeta(p *peer, b []byte) {
	m, err := decodeMeta(p.node.Name, b)
	if err != nil {
		n.log.Warn("spmesh: discovery: ignoring peer metadata", "peer", p.node.Name, "err", err)
		n.setPeerEps(p, nil, true)
		return
	}
	p.gen = m.gen
	p.leaving = m.flags&flagLeaving != 0
	switch {
	case m.inline:
		n.setPeerEps(p, m.eps, true)
	case p.recGen == m.gen && p.recs != nil:
		n.setPeerEps(p, p.recs, true)
	default:
		// Keep the previous set until the new records arrive.
		p.full = false
		p.lastWant = time.Time{}
		n.kick(n.kickFetch)
	}
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
