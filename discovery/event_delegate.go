package discovery

import (
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
)

// NotifyJoin records a new (or returning) member.
func (e *mlEvents) NotifyJoin(nd *memberlist.Node) {
	(*Node)(e).onMember(nd, func(n *Node) { n.noteMember(nd, EventJoin) })
}

// NotifyUpdate takes in a member's new metadata (or address).
func (e *mlEvents) NotifyUpdate(nd *memberlist.Node) {
	(*Node)(e).onMember(nd, func(n *Node) { n.noteMember(nd, EventUpdate) })
}

// NotifyLeave drops a member that left or failed, with its endpoints, and
// remembers its address for re-joins.
func (e *mlEvents) NotifyLeave(nd *memberlist.Node) {
	(*Node)(e).onMember(nd, func(n *Node) { n.noteGone(nd) })
}

// onMember runs f with n.mu held for an event about the member nd: not for
// this node's own events, nor once n is closed.
func (n *Node) onMember(nd *memberlist.Node, f func(*Node)) {
	if nd.Name == n.name {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	f(n)
}

// noteMember records nd (joined or updated), emits ev and takes in its
// metadata. n.mu is held.
func (n *Node) noteMember(nd *memberlist.Node, ev EventType) {
	p := n.peers[nd.Name]
	if p == nil {
		p = &peer{full: true}
		n.peers[nd.Name] = p
	}
	addr := nodeAddr(nd)
	if p.addr != "" && p.addr != addr {
		// Back on a new address (a restart): what it serves there is
		// pulled from there.
		p.pulled = false
		n.setPeerEps(p, nil, true)
	}
	p.node, p.addr = copyNode(nd), addr
	p.ip, _ = netip.AddrFromSlice(nd.Addr)
	p.ip = p.ip.Unmap()
	if ev == EventJoin {
		delete(n.gone, nd.Name)
	}
	n.emit(Event{Type: ev, Node: nd.Name, Addr: p.addr})
	n.applyMeta(p, nd.Meta)
}

// noteGone drops nd, a member that left or failed, with its endpoints, and
// remembers its address for re-joins. n.mu is held.
func (n *Node) noteGone(nd *memberlist.Node) {
	addr := nodeAddr(nd)
	p := n.peers[nd.Name]
	// memberlist does not tell a leave from a failure here: a leaving node
	// flags it in its metadata first.
	left := p != nil && p.leaving
	n.gone[nd.Name] = goneNode{addr: addr, at: time.Now(), left: left}
	typ := EventFailed
	if left {
		typ = EventLeave
	}
	n.emit(Event{Type: typ, Node: nd.Name, Addr: addr})
	if p != nil {
		n.setPeerEps(p, nil, true)
		delete(n.peers, nd.Name)
	}
}
