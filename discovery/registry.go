package discovery

import (
	"fmt"
	"slices"
	"sync"

	"github.com/spmesh/spmesh"
)

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

// flags returns the metadata flags. Called with n.mu held.
func (n *Node) flags() uint64 {
	if n.leaving {
		return flagLeaving
	}
	return 0
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

// setPeerEps replaces a peer's endpoints. Called with n.mu held.
func (n *Node) setPeerEps(p *peer, eps []spmesh.Endpoint, full bool) {
	old := p.eps
	p.eps, p.full = eps, full
	n.diff(p.node.Name, p.addr, old, eps)
}
