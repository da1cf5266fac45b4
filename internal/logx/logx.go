// Package logx holds spmesh's log/slog scheme: the attribute keys every
// log call uses, and the one limiter every log of a dropped or refused
// peer's traffic goes through. It is shared by internal/sock (the sockets)
// and discovery, which may not import internal/sock (mangos stays sealed
// there).
//
// The scheme (documented for users in the root package doc):
//   - Messages start with "spmesh: " ("spmesh: discovery: " in discovery,
//     "spmesh: memberlist: " for memberlist's own lines). spmesh adds no
//     "component" (or other source) attribute: the prefix says where a line
//     comes from, so a user's logger that carries its own component key
//     never sees it twice.
//   - Levels: Debug per message (a bad frame, a resend); Info lifecycle
//     (joined, recovered); Warn a refusal or drop of a peer's traffic (and
//     a setting that weakens security); Error only for spmesh's own
//     failures (a panic recovered, a failed fsync).
//   - Keys: the constants below, one meaning each.
package logx

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Attribute keys. A key means one thing in every record of the module.
const (
	Remote     = "remote"     // a peer's network address (host:port)
	Node       = "node"       // a peer's node name (discovery member name)
	Endpoint   = "endpoint"   // an advertised endpoint's address
	Service    = "service"    // a service name
	Role       = "role"       // a role (pub, sub, rep, ...)
	Err        = "err"        // the error
	Reason     = "reason"     // why a thing was refused, when not an error
	ID         = "id"         // a message or job id
	Path       = "path"       // a file path (outbox)
	Suppressed = "suppressed" // lines of this kind for this peer not logged since the last one
)

// Every is the default least time between two lines of one kind for one
// peer.
const Every = 10 * time.Second

// maxKeys bounds the peers a Limiter remembers: a flood from many
// addresses (or node names, which a peer picks) cannot grow it. Past it,
// the peers not remembered share one line per kind per interval.
const maxKeys = 1024

// overflow is the peer key shared by the peers past maxKeys.
const overflow = "\x00overflow"

type key struct{ msg, peer string }

type entry struct {
	next       time.Time
	suppressed uint64
}

// Limiter lets at most one line per kind (message) per peer through per
// interval: the first at once, the next one (after the interval) carries
// the count of lines not logged in between under the key "suppressed". The
// zero value is ready, with interval Every. It is safe for concurrent use.
type Limiter struct {
	// Interval overrides Every when positive; set it before first use.
	Interval time.Duration
	// Now overrides time.Now (tests); set it before first use.
	Now func() time.Time

	mu sync.Mutex
	m  map[key]*entry
}

// PeerKey returns the part of addr that identifies a peer for the limiter:
// the host of a host:port (a peer that reconnects from a new port is the
// same peer), addr itself otherwise.
func PeerKey(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// Log logs msg at level with args on lg, unless a line of msg for peer
// went through less than the interval ago. peer is the peer's identity
// (see PeerKey; "" for unknown); args should name it (Remote or Node).
// Nothing is done, and nothing counted, when lg does not log level.
func (l *Limiter) Log(lg *slog.Logger, level slog.Level, peer, msg string, args ...any) {
	if lg == nil || !lg.Enabled(context.Background(), level) {
		return
	}
	n, ok := l.allow(msg, peer)
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, Suppressed, n)
	}
	lg.Log(context.Background(), level, msg, args...)
}

// allow reports whether a line of msg for peer goes through now, and how
// many were suppressed before it.
func (l *Limiter) allow(msg, peer string) (uint64, bool) {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	every := Every
	if l.Interval > 0 {
		every = l.Interval
	}
	t := now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[key]*entry)
	}
	k := key{msg, peer}
	e := l.m[k]
	if e == nil {
		if len(l.m) >= maxKeys {
			l.sweep(t)
		}
		if len(l.m) >= maxKeys {
			k.peer = overflow
			e = l.m[k]
		}
		if e == nil {
			e = &entry{}
			l.m[k] = e
		}
	}
	if t.Before(e.next) {
		e.suppressed++
		return 0, false
	}
	n := e.suppressed
	e.next, e.suppressed = t.Add(every), 0
	return n, true
}

// sweep forgets the peers whose interval is over (their next line goes
// through at once anyway; a count of suppressed lines is lost with them).
func (l *Limiter) sweep(t time.Time) {
	for k, e := range l.m {
		if !t.Before(e.next) && k.peer != overflow {
			delete(l.m, k)
		}
	}
}

// Pending returns how many lines of msg for peer were suppressed since
// the last one logged.
func (l *Limiter) Pending(peer, msg string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.m[key{msg, peer}]; e != nil {
		return e.suppressed
	}
	return 0
}
