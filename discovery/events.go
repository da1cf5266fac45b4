package discovery

import (
	"time"
)

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
