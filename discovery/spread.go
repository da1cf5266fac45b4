package discovery

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/logx"
)

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

// applyMeta takes in a peer's (new) metadata: a digest of its records,
// which are pulled from the peer itself when the digest announces a gen
// not pulled yet. Endpoints in the metadata (older versions put them
// there) are never taken: metadata is relayed by gossip. Called with n.mu
// held.
func (n *Node) applyMeta(p *peer, b []byte) {
	m, err := decodeMeta(p.node.Name, b)
	if err != nil {
		n.recordsRefused.Add(1)
		n.logs.Log(n.log, slog.LevelWarn, p.node.Name, "spmesh: discovery: ignoring peer metadata", logx.Node, p.node.Name, logx.Err, err)
		return
	}
	p.gen = m.gen
	p.hints, p.hinted = m.hints, m.hinted
	p.leaving = m.flags&flagLeaving != 0
	if p.leaving {
		n.setPeerEps(p, nil, true)
		return
	}
	if p.pulled && p.recGen >= m.gen {
		p.full = true // the records pulled are those of this gen or newer
		return
	}
	p.full = false
	if !p.pulling {
		p.nextPull = time.Time{}
	}
	n.kick(n.kickFetch)
}
