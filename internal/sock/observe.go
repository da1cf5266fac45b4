package sock

import (
	"errors"
	"log/slog"

	"github.com/spmesh/spmesh/internal/logx"
	"github.com/spmesh/spmesh/internal/sptcp"
)

// observer is a socket's sptcp.Observer: it counts what the transport
// reports in the socket's Counters, records connection errors as the
// socket's LastError, and logs them with the peer's address through the
// socket's limiter: at most one line per kind per peer host per
// logx.Every (the first at once; the next says how many were not logged
// in between, under "suppressed").
type observer struct {
	so *Socket
}

var (
	_ sptcp.Observer     = (*observer)(nil)
	_ sptcp.FrameRefuser = (*observer)(nil)
)

func newObserver(so *Socket) *observer { return &observer{so: so} }

func (o *observer) ConnRefused(remote string) {
	o.so.C.ConnsRefused.Add(1)
	o.so.logWarn(remote, "spmesh: connection refused at the listener's connection cap",
		logx.Remote, remote, "max_conns", o.so.Settings.MaxConns)
}

func (o *observer) ConnTimeout(remote string, err error) {
	o.so.C.ConnTimeouts.Add(1)
	o.so.C.SetLastError(remote, err)
	// A peer that connected and never spoke is routine (a client that has
	// nothing to ask yet reconnects): debug. A stalled frame or handshake
	// is not: warn.
	level := slog.LevelWarn
	if errors.Is(err, sptcp.ErrIdleTimeout) {
		level = slog.LevelDebug
	}
	o.so.logRated(level, remote, "spmesh: connection closed for time", logx.Remote, remote, logx.Err, err)
}

func (o *observer) HandshakeError(remote string, err error) {
	o.so.C.HandshakeErrors.Add(1)
	o.so.C.SetLastError(remote, err)
	o.so.logWarn(remote, "spmesh: handshake failed", logx.Remote, remote, logx.Err, err)
}

func (o *observer) DialError(addr string, err error) {
	o.so.C.SetLastError(addr, err)
	o.so.logWarn(addr, "spmesh: dial failed (retrying)", logx.Remote, addr, logx.Err, err)
}

// Oversize counts a frame over the receive limit (dropped, and replaced by
// whatever OversizeFrame makes of it).
func (o *observer) Oversize(remote string, peerProto uint16, prefix []byte, size uint64) []byte {
	o.so.C.TooLarge.Add(1)
	o.so.C.Drop(1, &o.so.C.DroppedTooLarge)
	o.so.logWarn(remote, "spmesh: received frame over the size limit dropped",
		logx.Remote, remote, "size", size, "max", o.so.Settings.MaxMsgSize)
	return o.so.OversizeFrame(peerProto, prefix, size)
}

// FrameRefused counts a frame over the receive limit that closed its
// connection (no reply channel, or a claim far past the limit).
func (o *observer) FrameRefused(remote string, peerProto uint16, size uint64) {
	o.so.C.TooLarge.Add(1)
	o.so.C.Drop(1, &o.so.C.DroppedTooLarge)
	o.so.logWarn(remote, "spmesh: frame over the size limit: connection closed",
		logx.Remote, remote, "size", size, "max", o.so.Settings.MaxMsgSize)
}

// logWarn logs a refusal or drop of the traffic of the peer at addr
// through the socket's limiter (see logx.Limiter).
func (so *Socket) logWarn(addr, msg string, args ...any) {
	so.logRated(slog.LevelWarn, addr, msg, args...)
}

// WarnPeer is logWarn for the pattern packages: a refusal or drop of the
// traffic of the peer at addr, logged at Warn through the socket's limiter.
func (so *Socket) WarnPeer(addr, msg string, args ...any) { so.logWarn(addr, msg, args...) }

// logRated logs at level through the socket's limiter, keyed by the host
// of addr ("" for an unknown peer).
func (so *Socket) logRated(level slog.Level, addr, msg string, args ...any) {
	so.logs.Log(so.Settings.Logger, level, logx.PeerKey(addr), msg, args...)
}
