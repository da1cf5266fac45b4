package discovery

import "github.com/hashicorp/memberlist"

// MemberCounts is how many members a node knows, by state.
type MemberCounts struct {
	// Alive counts the live members, this node included: those
	// [Node.Members] lists (suspects included).
	Alive int `json:"alive" msgpack:"alive"`
	// Suspect counts the live members suspected of failure (a subset of
	// Alive): they have not answered a probe and have not refuted yet.
	Suspect int `json:"suspect" msgpack:"suspect"`
	// Left and Failed count the members that left, or were declared dead,
	// within Config.RejoinWindow (a member that left: at most a minute):
	// those the node still tries to re-join.
	Left   int `json:"left" msgpack:"left"`
	Failed int `json:"failed" msgpack:"failed"`
}

// MemberCounts counts the members this node knows by state. Unlike
// [Node.Members] it makes the node fetch nothing: it is cheap enough for a
// metrics scrape. After Close it returns zero counts.
func (n *Node) MemberCounts() MemberCounts {
	var c MemberCounts
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return c
	}
	c.Alive = 1 + len(n.peers)
	for _, g := range n.gone {
		if g.left {
			c.Left++
		} else {
			c.Failed++
		}
	}
	n.mu.Unlock()
	for _, m := range n.ml.Members() {
		if m.State == memberlist.StateSuspect && m.Name != n.name {
			c.Suspect++
		}
	}
	return c
}
