package sock

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/spmesh/spmesh/internal/sptcp"
)

// observer is a socket's sptcp.Observer: it counts what the transport
// reports in the socket's Counters, records connection errors as the
// socket's LastError, and logs them with the peer's address, at most once
// per logEvery per kind (the first at once; the next says how many were
// not logged in between).
type observer struct {
	so                                       *Socket
	refused, timeout, handshake, dial, large logLimit
}

var (
	_ sptcp.Observer     = (*observer)(nil)
	_ sptcp.FrameRefuser = (*observer)(nil)
)

// logEvery is the least time between two logs of one kind of connection
// event on one socket.
const logEvery = 5 * time.Second

func newObserver(so *Socket) *observer { return &observer{so: so} }

func (o *observer) ConnRefused(remote string) {
	o.so.C.ConnsRefused.Add(1)
	o.refused.log(o.so.Settings.Logger, slog.LevelWarn, "spmesh: connection refused at the listener's connection cap",
		"remote", remote, "max_conns", o.so.Settings.MaxConns)
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
	o.timeout.log(o.so.Settings.Logger, level, "spmesh: connection closed for time", "remote", remote, "err", err)
}

func (o *observer) HandshakeError(remote string, err error) {
	o.so.C.HandshakeErrors.Add(1)
	o.so.C.SetLastError(remote, err)
	o.handshake.log(o.so.Settings.Logger, slog.LevelWarn, "spmesh: handshake failed", "remote", remote, "err", err)
}

func (o *observer) DialError(addr string, err error) {
	o.so.C.SetLastError(addr, err)
	o.dial.log(o.so.Settings.Logger, slog.LevelWarn, "spmesh: dial failed (retrying)", "addr", addr, "err", err)
}

// Oversize counts a frame over the receive limit (dropped, and replaced by
// whatever OversizeFrame makes of it).
func (o *observer) Oversize(peerProto uint16, prefix []byte, size uint64) []byte {
	o.so.C.TooLarge.Add(1)
	o.so.C.Dropped.Add(1)
	o.large.log(o.so.Settings.Logger, slog.LevelWarn, "spmesh: received frame over the size limit dropped",
		"size", size, "max", o.so.Settings.MaxMsgSize)
	return o.so.OversizeFrame(peerProto, prefix, size)
}

// FrameRefused counts a frame over the receive limit that closed its
// connection (no reply channel, or a claim far past the limit).
func (o *observer) FrameRefused(remote string, peerProto uint16, size uint64) {
	o.so.C.TooLarge.Add(1)
	o.so.C.Dropped.Add(1)
	o.large.log(o.so.Settings.Logger, slog.LevelWarn, "spmesh: frame over the size limit: connection closed",
		"remote", remote, "size", size, "max", o.so.Settings.MaxMsgSize)
}

// logLimit lets one log through per logEvery.
type logLimit struct {
	mu         sync.Mutex
	next       time.Time
	suppressed int
}

func (l *logLimit) log(lg *slog.Logger, level slog.Level, msg string, args ...any) {
	if lg == nil || !lg.Enabled(context.Background(), level) {
		return
	}
	now := time.Now()
	l.mu.Lock()
	if now.Before(l.next) {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.next = now.Add(logEvery)
	n := l.suppressed
	l.suppressed = 0
	l.mu.Unlock()
	if n > 0 {
		args = append(args, "not_logged_since_last", n)
	}
	lg.Log(context.Background(), level, msg, args...)
}
