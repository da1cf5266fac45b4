package sock

import (
	"sync/atomic"

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

		TooLarge:         so.C.TooLarge.Load(),
		SendTimeouts:     so.C.SendTimeouts.Load(),
		ConnsRefused:     so.C.ConnsRefused.Load(),
		ConnTimeouts:     so.C.ConnTimeouts.Load(),
		HandshakeErrors:  so.C.HandshakeErrors.Load(),
		EndpointsRefused: so.C.EndpointsRefused.Load(),
		LastError:        so.C.LastError(),
	}
}
