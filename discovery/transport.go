package discovery

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/spmesh/spmesh/internal/logx"
)

// transport is memberlist's UDP/TCP transport with outgoing TCP connections
// that Close can abort (a join or records pull stuck on an unreachable peer
// never delays Close), and incoming TCP connections sorted by their first
// byte: the records exchange (exMagic) is served by the node, everything
// else goes to memberlist.
type transport struct {
	*memberlist.NetTransport
	ctx    context.Context
	cancel context.CancelFunc

	streams chan net.Conn // to memberlist
	serve   func(net.Conn, *bufio.Reader)
	allowed func(net.Addr) bool // Config.CIDRsAllowed
	peekFor time.Duration
	stop    chan struct{} // closed after the listeners are
	wg      sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // outgoing, and incoming being sorted or served
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

// newTransport binds addr:port (port 0: a free port, retried a few times
// because UDP and TCP must get the same one). serve answers records
// exchanges; peek bounds the wait for an incoming connection's first byte.
func newTransport(addr string, port int, logger *log.Logger, serve func(net.Conn, *bufio.Reader), allowed func(net.Addr) bool, peek time.Duration) (*transport, error) {
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
			t := &transport{NetTransport: nt, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{},
				streams: make(chan net.Conn), serve: serve, allowed: allowed, peekFor: peek, stop: make(chan struct{})}
			t.wg.Add(1)
			go t.sort()
			return t, nil
		}
	}
	return nil, fmt.Errorf("spmesh: discovery: bind %s: %v", net.JoinHostPort(addr, fmt.Sprint(port)), err)
}

// StreamCh implements memberlist.Transport: the incoming connections that
// are not records exchanges.
func (t *transport) StreamCh() <-chan net.Conn { return t.streams }

// sort reads every incoming connection's first byte, off the accept loop.
func (t *transport) sort() {
	defer t.wg.Done()
	in := t.NetTransport.StreamCh()
	for {
		select {
		case <-t.stop:
			return
		case c := <-in:
			if !t.allowed(c.RemoteAddr()) || !t.track(c) {
				c.Close()
				continue
			}
			t.wg.Add(1)
			go t.sortOne(c)
		}
	}
}

func (t *transport) sortOne(c net.Conn) {
	defer t.wg.Done()
	r := bufio.NewReaderSize(c, 512)
	c.SetReadDeadline(time.Now().Add(t.peekFor))
	first, err := r.Peek(1)
	if err != nil {
		t.untrack(c)
		c.Close()
		return
	}
	if first[0] == exMagic {
		r.Discard(1)
		t.serve(c, r)
		t.untrack(c)
		return
	}
	c.SetReadDeadline(time.Time{})
	t.untrack(c)
	pc := &prefixConn{Conn: c, r: r}
	select {
	case t.streams <- pc:
	case <-t.stop:
		c.Close()
	}
}

func (t *transport) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx.Err() != nil {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *transport) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// Shutdown implements memberlist.Transport: it closes the listeners, then
// stops sorting incoming connections.
func (t *transport) Shutdown() error {
	t.abort()
	err := t.NetTransport.Shutdown()
	t.mu.Lock()
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
	t.mu.Unlock()
	t.wg.Wait()
	return err
}

// DialTimeout implements memberlist.Transport.
func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.dial(addr, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.dial(a.Addr, timeout)
}

// dial opens a TCP connection that abort closes.
func (t *transport) dial(addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(t.ctx, "tcp", addr)
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

// abort cancels dials in progress and closes outgoing connections and
// incoming ones not yet handed to memberlist.
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
// records ("spmesh: memberlist: text": no source attribute, so none
// collides with the user's), and counts the gossip it refused for a label
// or key; those refusals are logged through the node's limiter, keyed by
// the first address in the text.
type logWriter struct {
	l       *slog.Logger
	refused *atomic.Uint64
	logs    *logx.Limiter
}

func newStdLogger(l *slog.Logger, refused *atomic.Uint64, logs *logx.Limiter) *log.Logger {
	return log.New(logWriter{l, refused, logs}, "", 0)
}

var logLevels = []struct {
	tag   string
	level slog.Level
}{{"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo}, {"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError}}

// refusedGossip are the memberlist log texts of gossip refused for its
// label or key.
var refusedGossip = []string{"unacceptable label", "stream label header", "Decrypt packet failed", "No installed keys could decrypt",
	"encryption is configured but remote state is not encrypted", "Blocked alive", "Rejected node", "Rejected IP update"}

func (w logWriter) Write(p []byte) (int, error) {
	n := len(p)
	p = bytes.TrimRight(p, "\n")
	level := slog.LevelInfo
	for _, lv := range logLevels {
		if bytes.HasPrefix(p, []byte(lv.tag)) {
			level, p = lv.level, bytes.TrimSpace(p[len(lv.tag):])
			break
		}
	}
	kind := ""
	for _, s := range refusedGossip {
		if bytes.Contains(p, []byte(s)) {
			kind = s
			if w.refused != nil {
				w.refused.Add(1)
			}
			break
		}
	}
	if !w.l.Enabled(context.Background(), level) {
		return n, nil
	}
	msg := "spmesh: memberlist: " + strings.TrimPrefix(string(p), "memberlist: ")
	if kind != "" && w.logs != nil {
		// A refusal: the peer's traffic. Rated per kind and peer (a
		// remote's text varies, the kind does not).
		if level < slog.LevelWarn {
			level = slog.LevelWarn
		}
		peer := firstAddr(string(p))
		w.logs.Log(w.l, level, peer, "spmesh: memberlist: gossip refused: "+kind, logx.Remote, peer, "detail", msg)
		return n, nil
	}
	w.l.Log(context.Background(), level, msg)
	return n, nil
}

// firstAddr returns the host of the first host:port (or IP) in memberlist
// text, "" when there is none.
func firstAddr(s string) string {
	for _, f := range strings.Fields(s) {
		if i := strings.LastIndex(f, "="); i >= 0 {
			f = f[i+1:]
		}
		f = strings.Trim(f, "(),;:'\"")
		if ap, err := netip.ParseAddrPort(f); err == nil {
			return ap.Addr().Unmap().String()
		}
		if a, err := netip.ParseAddr(strings.Trim(f, "[]:")); err == nil {
			return a.Unmap().String()
		}
	}
	return ""
}
