package discovery

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/logx"
)

// EventType says what an [Event] reports.
type EventType int

// The event types.
const (
	// EventJoin: a node joined (or came back).
	EventJoin EventType = iota + 1
	// EventLeave: a node left gracefully.
	EventLeave
	// EventFailed: a node stopped answering and was declared dead.
	EventFailed
	// EventUpdate: a node's metadata changed.
	EventUpdate
	// EventServiceAdded: an endpoint appeared (Endpoint is set).
	EventServiceAdded
	// EventServiceRemoved: an endpoint disappeared (Endpoint is set).
	EventServiceRemoved
)

// String returns the event type's name.
func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventLeave:
		return "leave"
	case EventFailed:
		return "failed"
	case EventUpdate:
		return "update"
	case EventServiceAdded:
		return "service-added"
	case EventServiceRemoved:
		return "service-removed"
	}
	return "unknown"
}

// Event is one change in the mesh, as this node saw it.
type Event struct {
	Type     EventType
	Node     string          // the node concerned
	Addr     string          // its gossip address, host:port
	Endpoint spmesh.Endpoint // for service events
	Time     time.Time       // when this node saw it
}

// The memberlist callbacks. memberlist calls them from its receive paths,
// some with its own locks held: they only update the node's state under
// n.mu and hand work to the node's goroutines, never block, and never call
// back into memberlist.
type (
	mlDelegate Node
	mlEvents   Node
	mlConflict Node
	mlAlive    Node
)

var (
	_ memberlist.Delegate         = (*mlDelegate)(nil)
	_ memberlist.EventDelegate    = (*mlEvents)(nil)
	_ memberlist.ConflictDelegate = (*mlConflict)(nil)
	_ memberlist.AliveDelegate    = (*mlAlive)(nil)
)

// NodeMeta returns the metadata encoded at the last change, which never
// exceeds the limit (see encodeMeta).
func (d *mlDelegate) NodeMeta(limit int) []byte {
	n := (*Node)(d)
	n.mu.Lock()
	defer n.mu.Unlock()
	return bytes.Clone(n.meta) // a digest: a few bytes
}

// NotifyMsg implements memberlist.Delegate. Records never travel in
// messages (they are pulled from the node they describe); a records
// message (sent by an older version, or forged) is refused and counted.
func (d *mlDelegate) NotifyMsg(b []byte) {
	if len(b) > 0 && b[0] == msgRecords {
		(*Node)(d).recordsRefused.Add(1)
	}
}

// GetBroadcasts implements memberlist.Delegate; records are pulled
// instead.
func (d *mlDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState implements memberlist.Delegate: the push/pull exchange
// carries no records (the receiver could not tell who sent them); the
// metadata digests it carries make the receiver pull what changed.
func (d *mlDelegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate: records in a push/pull
// (sent by an older version, or forged in another node's name) are
// refused and counted.
func (d *mlDelegate) MergeRemoteState(buf []byte, join bool) {
	if len(buf) > 0 {
		(*Node)(d).recordsRefused.Add(1)
	}
}

// NotifyAlive implements memberlist.AliveDelegate: a member whose gossip
// address no member may point others at (unspecified, link-local,
// multicast, cloud metadata) is refused, so this node never probes it or
// exchanges state with it.
func (a *mlAlive) NotifyAlive(nd *memberlist.Node) error {
	n := (*Node)(a)
	if nd.Name == n.name {
		return nil
	}
	if err := checkGossipAddr(nd.Addr, nd.Port); err != nil {
		n.membersRefused.Add(1)
		n.setLastError(fmt.Errorf("member %s at %s refused: %v", nd.Name, nodeAddr(nd), err))
		n.logs.Log(n.log, slog.LevelWarn, nodeAddr(nd), "spmesh: discovery: member refused",
			logx.Node, nd.Name, logx.Remote, nodeAddr(nd), logx.Reason, err)
		return err
	}
	return nil
}

// NotifyJoin records a new (or returning) member.
func (e *mlEvents) NotifyJoin(nd *memberlist.Node) { (*Node)(e).noteMember(nd, EventJoin) }

// NotifyUpdate takes in a member's new metadata (or address).
func (e *mlEvents) NotifyUpdate(nd *memberlist.Node) { (*Node)(e).noteMember(nd, EventUpdate) }

// noteMember records nd (joined or updated), emits ev and takes in its
// metadata.
func (n *Node) noteMember(nd *memberlist.Node, ev EventType) {
	if nd.Name == n.name {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
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

// NotifyLeave drops a member that left or failed, with its endpoints, and
// remembers its address for re-joins.
func (e *mlEvents) NotifyLeave(nd *memberlist.Node) {
	n := (*Node)(e)
	if nd.Name == n.name {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
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

// NotifyConflict logs a name claimed from two addresses (a restart before
// the old incarnation was declared dead, or a duplicate name).
func (c *mlConflict) NotifyConflict(existing, other *memberlist.Node) {
	n := (*Node)(c)
	n.logs.Log(n.log, slog.LevelWarn, existing.Name, "spmesh: discovery: node name claimed by two addresses; the newcomer is accepted once the old one is declared dead",
		logx.Node, existing.Name, "existing", nodeAddr(existing), "other", nodeAddr(other))
}
