package discovery

import (
	"bytes"

	"github.com/hashicorp/memberlist"
)

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
