package discovery

import (
	"time"

	"github.com/spmesh/spmesh"
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
