package discovery

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// transport is memberlist's UDP/TCP transport with outgoing TCP connections
// that Close can abort: a join or records fetch stuck on an unreachable peer
// never delays Close.
type transport struct {
	*memberlist.NetTransport
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

// newTransport binds addr:port (port 0: a free port, retried a few times
// because UDP and TCP must get the same one).
func newTransport(addr string, port int, logger *log.Logger) (*transport, error) {
	tries := 1
	if port == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{addr},
			BindPort:  port,
			Logger:    logger,
		})
		if err == nil {
			ctx, cancel := context.WithCancel(context.Background())
			return &transport{NetTransport: nt, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}, nil
		}
	}
	return nil, fmt.Errorf("spmesh: discovery: bind %s: %v", net.JoinHostPort(addr, fmt.Sprint(port)), err)
}

// DialTimeout implements memberlist.Transport.
func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(t.ctx, "tcp", a.Addr)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx.Err() != nil {
		c.Close()
		return nil, t.ctx.Err()
	}
	tc := &trackedConn{Conn: c, t: t}
	t.conns[tc] = struct{}{}
	return tc, nil
}

// abort cancels dials in progress and closes outgoing connections.
func (t *transport) abort() {
	t.mu.Lock()
	t.cancel()
	conns := t.conns
	t.conns = map[net.Conn]struct{}{}
	t.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

type trackedConn struct {
	net.Conn
	t    *transport
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.conns, c)
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}

// logWriter turns memberlist's "[LEVEL] memberlist: text" lines into slog
// records.
type logWriter struct{ l *slog.Logger }

func newStdLogger(l *slog.Logger) *log.Logger { return log.New(logWriter{l}, "", 0) }

func (w logWriter) Write(p []byte) (int, error) {
	n := len(p)
	p = bytes.TrimRight(p, "\n")
	level := slog.LevelInfo
	for tag, lv := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError} {
		if bytes.HasPrefix(p, []byte(tag)) {
			level, p = lv, bytes.TrimSpace(p[len(tag):])
			break
		}
	}
	if !w.l.Enabled(context.Background(), level) {
		return n, nil
	}
	w.l.Log(context.Background(), level, strings.TrimPrefix(string(p), "memberlist: "), "component", "memberlist")
	return n, nil
}
