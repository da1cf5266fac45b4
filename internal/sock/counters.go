package sock

import (
	"sync/atomic"

	"go.nanomsg.org/mangos/v3"

	"github.com/spmesh/spmesh"
)

// Counters are a socket's statistics, updated atomically. Their meaning is
// documented on spmesh.Stats.
type Counters struct {
	Sent, Received, Dropped, Resent, DecodeErrors      atomic.Uint64
	TooLarge, SendTimeouts, ConnsRefused, ConnTimeouts atomic.Uint64
	HandshakeErrors, EndpointsRefused                  atomic.Uint64
	// BytesSent and BytesReceived: frame bodies written to and read from
	// connections, counted where the protocol hands a frame to a
	// connection or takes one from it (pub.go, push.go, req.go, sub.go,
	// server.go, inbox.go, control.go).
	BytesSent, BytesReceived atomic.Uint64
	// DroppedQueueFull and DroppedClosed: the drops (also in Dropped)
	// whose cause is known where they are counted.
	DroppedQueueFull, DroppedClosed atomic.Uint64
	// The other causes of Dropped (see Drop and spmesh.Stats).
	DroppedTooLarge, DroppedSendTimeout, DroppedExpired, DroppedGap, DroppedLate atomic.Uint64
	// Draining: Drain was called (spmesh.Stats.Draining).
	Draining atomic.Bool

	lastErr atomic.Pointer[string]
}

// SetLastError records err (with the peer's address) as the socket's last
// connection-level error.
func (c *Counters) SetLastError(addr string, err error) {
	s := addr + ": " + err.Error()
	c.lastErr.Store(&s)
}

// LastError returns what SetLastError last recorded, or "".
func (c *Counters) LastError() string {
	if p := c.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// Stats returns the counters.
func (so *Socket) Stats() spmesh.Stats {
	return spmesh.Stats{
		Sent:         so.C.Sent.Load(),
		Received:     so.C.Received.Load(),
		Dropped:      so.C.Dropped.Load(),
		Resent:       so.C.Resent.Load(),
		DecodeErrors: so.C.DecodeErrors.Load(),
		Peers:        so.Peers(),

		BytesSent:     so.C.BytesSent.Load(),
		BytesReceived: so.C.BytesReceived.Load(),

		DroppedQueueFull: so.C.DroppedQueueFull.Load(),
		DroppedClosed:    so.C.DroppedClosed.Load(),

		DroppedTooLarge:    so.C.DroppedTooLarge.Load(),
		DroppedSendTimeout: so.C.DroppedSendTimeout.Load(),
		DroppedExpired:     so.C.DroppedExpired.Load(),
		DroppedGap:         so.C.DroppedGap.Load(),
		DroppedLate:        so.C.DroppedLate.Load(),
		Draining:           so.C.Draining.Load(),

		TooLarge:         so.C.TooLarge.Load(),
		SendTimeouts:     so.C.SendTimeouts.Load(),
		ConnsRefused:     so.C.ConnsRefused.Load(),
		ConnTimeouts:     so.C.ConnTimeouts.Load(),
		HandshakeErrors:  so.C.HandshakeErrors.Load(),
		EndpointsRefused: so.C.EndpointsRefused.Load(),
		LastError:        so.C.LastError(),
	}
}

// Drop counts n messages dropped, in Dropped and in cause, one of the
// Dropped* counters of c: every drop has exactly one cause, so that
// Dropped is the sum of the causes (spmesh.Stats).
func (c *Counters) Drop(n uint64, cause *atomic.Uint64) {
	c.Dropped.Add(n)
	cause.Add(n)
}

// dropQueued frees what is left in q and counts it as dropped for cause,
// without waiting: the caller has made sure nothing is queued to q any
// more, so what is left is taken here or by a receiver under way, each
// frame once.
func (c *Counters) dropQueued(q chan *mangos.Message, cause *atomic.Uint64) {
	for {
		select {
		case m := <-q:
			m.Free()
			c.Drop(1, cause)
		default:
			return
		}
	}
}
