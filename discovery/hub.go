package discovery

import (
	"cmp"
	"slices"

	"github.com/spmesh/spmesh"
)

// key names one watched set: a service and a role.
type key struct {
	service string
	role    spmesh.Role
}

// watch is one Watch call: a channel of capacity one that always holds the
// latest snapshot not yet read (older unread snapshots are replaced).
type watch struct {
	ch   chan []spmesh.Endpoint
	last []spmesh.Endpoint // the snapshot most recently put in ch
}

// hub fans endpoint snapshots out to watchers. It holds no lock of its own:
// its owner (Static or Node) calls every method with its mutex held, which
// also makes the owner the only sender on every channel, so a send never
// blocks.
type hub struct {
	watches map[key]map[*watch]struct{}
	closed  bool
}

func newHub() hub { return hub{watches: map[key]map[*watch]struct{}{}} }

// add registers a watcher of k and hands it snap as its first snapshot.
func (h *hub) add(k key, snap []spmesh.Endpoint) *watch {
	w := &watch{ch: make(chan []spmesh.Endpoint, 1)}
	ws := h.watches[k]
	if ws == nil {
		ws = map[*watch]struct{}{}
		h.watches[k] = ws
	}
	ws[w] = struct{}{}
	w.put(snap)
	return w
}

// watched reports whether anyone watches k.
func (h *hub) watched(k key) bool { return len(h.watches[k]) > 0 }

// publish hands snap to every watcher of k whose last snapshot differs.
func (h *hub) publish(k key, snap []spmesh.Endpoint) {
	for w := range h.watches[k] {
		if !sameEndpoints(w.last, snap) {
			w.put(snap)
		}
	}
}

// put replaces any unread snapshot by a private copy of snap; it never
// blocks because the caller is the only sender.
func (w *watch) put(snap []spmesh.Endpoint) {
	c := slices.Clone(snap)
	if c == nil {
		c = []spmesh.Endpoint{}
	}
	w.last = c
	select {
	case w.ch <- c:
		return
	default:
	}
	select {
	case <-w.ch:
	default:
	}
	w.ch <- c
}

// remove stops w and closes its channel; it is idempotent.
func (h *hub) remove(k key, w *watch) {
	ws := h.watches[k]
	if _, ok := ws[w]; !ok {
		return
	}
	delete(ws, w)
	if len(ws) == 0 {
		delete(h.watches, k)
	}
	close(w.ch)
}

// close closes every watcher's channel.
func (h *hub) close() {
	if h.closed {
		return
	}
	h.closed = true
	for k, ws := range h.watches {
		for w := range ws {
			close(w.ch)
		}
		delete(h.watches, k)
	}
}

// sortEndpoints orders endpoints by node, then address, then service, role
// and framing (enveloped first), so that snapshots compare and print stably.
func sortEndpoints(eps []spmesh.Endpoint) {
	slices.SortFunc(eps, cmpEndpoint)
}

func cmpEndpoint(a, b spmesh.Endpoint) int {
	return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Addr, b.Addr),
		cmp.Compare(a.Service, b.Service), cmp.Compare(a.Role, b.Role), cmpBool(a.Bare, b.Bare))
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func sameEndpoints(a, b []spmesh.Endpoint) bool {
	return len(a) == len(b) && (len(a) == 0 || slices.Equal(a, b))
}
