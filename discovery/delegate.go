package discovery

import (
	"bytes"
	"github.com/spmesh/spmesh"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"
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
)

var (
	_ memberlist.Delegate         = (*mlDelegate)(nil)
	_ memberlist.EventDelegate    = (*mlEvents)(nil)
	_ memberlist.ConflictDelegate = (*mlConflict)(nil)
)

// NodeMeta returns the metadata encoded at the last change, which never
// exceeds the limit (see encodeMeta).
func (d *mlDelegate) NodeMeta(limit int) []byte {
	n := (*Node)(d)
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.meta) > limit {
		return encodeMeta(n.gen, n.localEps, n.flags(), limit)
	}
	return bytes.Clone(n.meta)
}

// NotifyMsg queues a peer's message for the inbox goroutine; a full inbox
// drops it (the sender retries).
func (d *mlDelegate) NotifyMsg(b []byte) {
	n := (*Node)(d)
	select {
	case n.inbox <- bytes.Clone(b):
	default:
		n.inDropped.Add(1)
	}
}

// GetBroadcasts implements memberlist.Delegate; records travel by TCP
// instead.
func (d *mlDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState sends this node's full records with every push/pull.
func (d *mlDelegate) LocalState(join bool) []byte {
	n := (*Node)(d)
	n.mu.Lock()
	defer n.mu.Unlock()
	var b bytes.Buffer
	b.WriteByte(stateVersion)
	encodeRecords(&b, n.name, n.gen, n.localEps)
	return b.Bytes()
}

// MergeRemoteState takes in a peer's full records from a push/pull (its
// node state has been merged just before).
func (d *mlDelegate) MergeRemoteState(buf []byte, join bool) {
	if len(buf) < 1 || buf[0] != stateVersion {
		return
	}
	(*Node)(d).applyRecords(buf[1:])
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
	p.node, p.addr = copyNode(nd), nodeAddr(nd)
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
	n.log.Warn("spmesh: discovery: node name claimed by two addresses; the newcomer is accepted once the old one is declared dead",
		"name", existing.Name, "existing", nodeAddr(existing), "other", nodeAddr(other))
}

func encodeWant(from string) []byte {
	var b bytes.Buffer
	b.WriteByte(msgWant)
	e := msgpack.NewEncoder(&b)
	e.EncodeArrayLen(1)
	e.EncodeString(from)
	return b.Bytes()
}

func decodeWant(b []byte) (string, error) {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	if k, err := d.DecodeArrayLen(); err != nil || k != 1 {
		return "", decodeErr("want", err)
	}
	from, err := d.DecodeString()
	if err != nil {
		return "", decodeErr("want", err)
	}
	return from, nil
}
