package metrics

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
)

// Bounds of a [Snapshot], which travels in one survey answer.
const (
	// MaxSnapshotSockets bounds the sockets listed in one Snapshot (the
	// first by service and role); Snapshot.Omitted counts the rest.
	MaxSnapshotSockets = 64
	// MaxSnapshotPeers bounds the peers listed per socket (the slowest
	// first, by mean reply time); SocketSnapshot.PeersOmitted counts the
	// rest.
	MaxSnapshotPeers = 16
)

// Snapshot is the figures of one node at one moment: what a stats
// responder ([ServeMesh]) answers to a stats survey.
type Snapshot struct {
	// Node is the node's name; Time when the figures were read (by the
	// node's clock: rates are computed between two snapshots of one node).
	Node string    `json:"node" msgpack:"node"`
	Time time.Time `json:"time" msgpack:"time"`
	// Members counts the members the node knows, by state.
	Members discovery.MemberCounts `json:"members" msgpack:"members"`
	// Discovery holds the node's discovery counters by metric name, the
	// "spmesh_discovery_" prefix dropped ("pull_errors_total", ...).
	Discovery map[string]uint64 `json:"discovery,omitempty" msgpack:"discovery,omitempty"`
	// Sockets are the sockets of the collector, sorted by service and
	// role, at most MaxSnapshotSockets; Omitted counts those left out.
	Sockets []SocketSnapshot `json:"sockets" msgpack:"sockets"`
	Omitted int              `json:"omitted,omitempty" msgpack:"omitted,omitempty"`
}

// SocketSnapshot is the figures of one socket.
type SocketSnapshot struct {
	Service string `json:"service" msgpack:"service"`
	Role    string `json:"role" msgpack:"role"`
	// Values holds the socket's figures by metric name, the "spmesh_"
	// prefix dropped: "messages_sent_total", "dropped_total", "in_flight"...
	// (the table in the package doc; only those of its socket type). The
	// histogram spmesh_reply_seconds is there as its count and sum only:
	// "reply_seconds_count" and "reply_seconds_sum" (seconds).
	Values map[string]float64 `json:"values" msgpack:"values"`
	// Peers are the per-peer figures (Requester, Producer), the slowest
	// first, at most MaxSnapshotPeers; PeersOmitted counts the rest.
	Peers        []PeerSnapshot `json:"peers,omitempty" msgpack:"peers,omitempty"`
	PeersOmitted int            `json:"peers_omitted,omitempty" msgpack:"peers_omitted,omitempty"`
}

// PeerSnapshot is the figures of one peer of a socket: the
// spmesh_peer_* metrics.
type PeerSnapshot struct {
	Addr             string  `json:"addr" msgpack:"addr"`
	InFlight         int     `json:"in_flight" msgpack:"in_flight"`
	Credit           int     `json:"credit" msgpack:"credit"`
	Done             uint64  `json:"done" msgpack:"done"`
	Failed           uint64  `json:"failed" msgpack:"failed"`
	MeanReplySeconds float64 `json:"mean_reply_seconds" msgpack:"mean_reply_seconds"`
}

// Value returns the figure of that name ("messages_sent_total"), 0 when the
// socket has none.
func (s *SocketSnapshot) Value(name string) float64 { return s.Values[name] }

func (s *SocketSnapshot) peers(ps []spmesh.PeerStats) {
	out := make([]PeerSnapshot, 0, min(len(ps), MaxSnapshotPeers+1))
	for _, p := range ps {
		out = append(out, PeerSnapshot{
			Addr: p.Addr, InFlight: p.InFlight, Credit: p.Credit, Done: p.Done, Failed: p.Failed,
			MeanReplySeconds: p.MeanReplyTime.Seconds(),
		})
	}
	slices.SortFunc(out, func(a, b PeerSnapshot) int {
		return cmp.Or(cmp.Compare(b.MeanReplySeconds, a.MeanReplySeconds), cmp.Compare(a.Addr, b.Addr))
	})
	if len(out) > MaxSnapshotPeers {
		s.PeersOmitted = len(out) - MaxSnapshotPeers
		out = out[:MaxSnapshotPeers]
	}
	s.Peers = out
}

// Snapshot reads the Stats of the sockets added (only those of service,
// when not empty) and returns them sorted by service and role, at most
// MaxSnapshotSockets, with the number left out. It sets no node figures:
// [ServeMesh] does.
func (c *Collector) Snapshot(service string) (socks []SocketSnapshot, omitted int) {
	type sock struct {
		k    sockKey
		read func(*emitter)
	}
	c.mu.Lock()
	var all []sock
	for k, r := range c.socks {
		if service == "" || k.service == service {
			all = append(all, sock{k, r})
		}
	}
	c.mu.Unlock()
	slices.SortFunc(all, func(a, b sock) int {
		return cmp.Or(cmp.Compare(a.k.service, b.k.service), cmp.Compare(a.k.role, b.k.role))
	})
	if len(all) > MaxSnapshotSockets {
		omitted = len(all) - MaxSnapshotSockets
		all = all[:MaxSnapshotSockets]
	}
	socks = make([]SocketSnapshot, len(all))
	for i, s := range all {
		socks[i] = SocketSnapshot{Service: s.k.service, Role: s.k.role, Values: map[string]float64{}}
		s.read(&emitter{service: s.k.service, role: s.k.role, snap: &socks[i]})
	}
	return socks, omitted
}

// nodeSnapshot fills in the node figures of a snapshot.
func nodeSnapshot(n NodeStatser, snap *Snapshot) {
	snap.Node = n.Name()
	snap.Discovery = map[string]uint64{}
	for _, f := range nodeFigures(n.Stats()) {
		snap.Discovery[strings.TrimPrefix(f.m.short, "discovery_")] = f.v
	}
	if mc, ok := n.(memberCounter); ok {
		snap.Members = mc.MemberCounts()
	}
}
