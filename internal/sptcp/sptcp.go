package sptcp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/transport"
)

// The schemes this package registers.
const (
	Scheme    = "sptcp"
	TLSScheme = "sptls+tcp"
)

// Tuning constants.
const (
	// HighWater is how many bytes may wait in a pipe's write buffer before
	// Send blocks.
	HighWater = 256 << 10
	// ReadBuffer is the largest size of a pipe's read buffer. It starts at
	// MinReadBuffer, doubles while reads fill it, and halves again after
	// a run of reads that use little of it, so idle pipes stay small.
	ReadBuffer = 64 << 10
	// MinReadBuffer is the smallest (and first) read buffer size.
	MinReadBuffer = 4 << 10
	// KeepWriteBuffer is the largest write buffer kept between writes
	// when the last write used less than a quarter of it: past a burst,
	// big buffers go back to the garbage collector.
	KeepWriteBuffer = 64 << 10
	// RefThreshold is the body size from which Send keeps a reference to
	// the message instead of copying it.
	RefThreshold = 32 << 10
	// HandshakeTimeout is the default bound on connecting plus the TLS and
	// SP handshakes (Limits.HandshakeTimeout).
	HandshakeTimeout = 10 * time.Second
	// FrameTimeout is the default time a frame has to arrive once its first
	// byte did (Limits.FrameTimeout), before the per-size allowance
	// MinFrameRate adds.
	FrameTimeout = 30 * time.Second
	// MinFrameRate is the slowest transfer a frame is allowed on top of
	// FrameTimeout: an n-byte frame has FrameTimeout + n/MinFrameRate
	// seconds, so an 8 MiB frame survives a 1 Mbit/s link.
	MinFrameRate = 128 << 10
	// IdleTimeout is the default time an accepted connection has to
	// exchange its first frame (Limits.IdleTimeout).
	IdleTimeout = 60 * time.Second
	// MaxConns is the default number of connections a listener holds at
	// once, handshaking or established (Limits.MaxConns).
	MaxConns = 4096
	// OversizePrefix is how many bytes of an oversized frame are kept for
	// Observer.Oversize; the rest is read and discarded.
	OversizePrefix = 512
	// OversizeCeiling is how many times the receive limit a claim may be
	// and still be discarded in place (with a reply channel) rather than
	// closing the connection at once.
	OversizeCeiling = 16
	// CloseLinger bounds how long Close spends writing buffered frames.
	CloseLinger = 100 * time.Millisecond
)

// Endpoint options (dialer and listener) through which internal/sock learns
// what happens on the connections and sets their limits.
const (
	// OptionObserver is an [Observer]; nil (the default) observes nothing.
	OptionObserver = "SPMESH-OBSERVER"
	// OptionLimits is a [Limits] value.
	OptionLimits = "SPMESH-LIMITS"
	// OptionFlushed, read from a pipe, is a func(ctx) error that returns
	// nil once every frame sent on the pipe is written to the kernel (or
	// the pipe failed or closed), ctx's error when ctx ends first: a
	// draining socket waits on it before closing.
	OptionFlushed = "SPMESH-FLUSHED"
)

// Observer is told about connection-level events of a dialer or listener.
// Its methods are called from connection goroutines, concurrently, and
// must not block.
type Observer interface {
	// ConnRefused: a listener at its connection cap closed a new
	// connection from remote at once.
	ConnRefused(remote string)
	// ConnTimeout: a connection to or from remote was closed because a
	// handshake, a frame or the first frame did not arrive in time; err is
	// one of ErrHandshakeTimeout, ErrFrameTimeout, ErrIdleTimeout.
	ConnTimeout(remote string, err error)
	// HandshakeError: the SP header or the TLS handshake failed, on the
	// listener or the dialer side.
	HandshakeError(remote string, err error)
	// DialError: connecting to addr failed (before any handshake).
	DialError(addr string, err error)
	// Oversize: a frame of size bytes, over the receive limit, came from a
	// peer at remote of protocol peerProto that has a reply channel (REQ, REP,
	// SURVEYOR, RESPONDENT); prefix is its first bytes (at most
	// OversizePrefix, a copy the observer may keep). The rest was read and
	// discarded. A non-nil result is delivered in place of the frame; nil
	// drops it.
	Oversize(remote string, peerProto uint16, prefix []byte, size uint64) []byte
}

// FrameRefuser is an optional interface of an [Observer]: FrameRefused is
// called when an oversized frame closes the connection instead (a peer
// without a reply channel, or a claim past OversizeCeiling times the limit).
type FrameRefuser interface {
	FrameRefused(remote string, peerProto uint16, size uint64)
}

// Limits bound what a peer can hold. A zero field means the package
// default (MaxConns, FrameTimeout, IdleTimeout, HandshakeTimeout); a
// negative one means no limit. MaxConns and IdleTimeout apply to
// listeners only.
type Limits struct {
	MaxConns                                    int
	FrameTimeout, IdleTimeout, HandshakeTimeout time.Duration
}

// withDefaults replaces zero fields by the defaults.
func (l Limits) withDefaults() Limits {
	if l.MaxConns == 0 {
		l.MaxConns = MaxConns
	}
	if l.FrameTimeout == 0 {
		l.FrameTimeout = FrameTimeout
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = IdleTimeout
	}
	if l.HandshakeTimeout == 0 {
		l.HandshakeTimeout = HandshakeTimeout
	}
	return l
}

// Why a connection was closed for time.
var (
	ErrHandshakeTimeout = errors.New("handshake timeout")
	ErrFrameTimeout     = errors.New("incomplete frame timeout")
	ErrIdleTimeout      = errors.New("idle timeout: no frame exchanged")
)

// Transport is the plain TCP transport, registered under [Scheme].
var Transport transport.Transport = tran{scheme: Scheme}

// TLSTransport is the TLS over TCP transport, registered under [TLSScheme].
var TLSTransport transport.Transport = tran{scheme: TLSScheme, tls: true}

func init() {
	transport.RegisterTransport(Transport)
	transport.RegisterTransport(TLSTransport)
}

// Addr maps a stock address to this package's scheme: "tcp://" becomes
// "sptcp://" and "tls+tcp://" becomes "sptls+tcp://"; other addresses are
// returned unchanged.
func Addr(addr string) string {
	switch {
	case strings.HasPrefix(addr, "tcp://"):
		return Scheme + addr[len("tcp"):]
	case strings.HasPrefix(addr, "tls+tcp://"):
		return TLSScheme + addr[len("tls+tcp"):]
	}
	return addr
}

// PublicAddr is the inverse of [Addr]: "sptcp://" becomes "tcp://" and
// "sptls+tcp://" becomes "tls+tcp://"; other addresses are unchanged.
func PublicAddr(addr string) string {
	switch {
	case strings.HasPrefix(addr, Scheme+"://"):
		return "tcp" + addr[len(Scheme):]
	case strings.HasPrefix(addr, TLSScheme+"://"):
		return "tls+tcp" + addr[len(TLSScheme):]
	}
	return addr
}

type tran struct {
	scheme string
	tls    bool
}

func (t tran) Scheme() string { return t.scheme }

func (t tran) hostPort(addr string) (string, error) {
	hp, ok := strings.CutPrefix(addr, t.scheme+"://")
	if !ok {
		return "", mangos.ErrBadTran
	}
	hp = strings.TrimPrefix(hp, "*") // nanomsg's wildcard host
	if _, err := net.ResolveTCPAddr("tcp", hp); err != nil {
		return "", mangos.ErrBadAddr
	}
	return hp, nil
}

func (t tran) NewDialer(addr string, sock mangos.Socket) (transport.Dialer, error) {
	hp, err := t.hostPort(addr)
	if err != nil {
		return nil, err
	}
	return &dialer{addr: hp, proto: sock.Info(), cfg: newConfig(t.tls)}, nil
}

func (t tran) NewListener(addr string, sock mangos.Socket) (transport.Listener, error) {
	hp, err := t.hostPort(addr)
	if err != nil {
		return nil, err
	}
	return &listener{
		scheme: t.scheme, addr: hp, proto: sock.Info(), cfg: newConfig(t.tls),
		ready: make(chan *pipe), closeq: make(chan struct{}), conns: map[net.Conn]bool{},
	}, nil
}

// config holds the options a dialer or listener passes to its pipes.
type config struct {
	mu        sync.Mutex
	isTLS     bool
	maxRecv   int
	keepAlive time.Duration // 0: the system default; < 0: off
	noDelay   bool
	tls       *tls.Config
	obs       Observer
	limits    Limits
}

func newConfig(isTLS bool) *config { return &config{isTLS: isTLS, noDelay: true} }

func (c *config) set(name string, v any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch name {
	case mangos.OptionMaxRecvSize:
		if b, ok := v.(int); ok && b >= 0 {
			c.maxRecv = b
			return nil
		}
		return mangos.ErrBadValue
	case mangos.OptionKeepAliveTime:
		if b, ok := v.(time.Duration); ok {
			c.keepAlive = b
			return nil
		}
		return mangos.ErrBadValue
	case mangos.OptionKeepAlive:
		if b, ok := v.(bool); ok {
			if !b {
				c.keepAlive = -1
			} else if c.keepAlive < 0 {
				c.keepAlive = 0
			}
			return nil
		}
		return mangos.ErrBadValue
	case mangos.OptionNoDelay:
		if b, ok := v.(bool); ok {
			c.noDelay = b
			return nil
		}
		return mangos.ErrBadValue
	case mangos.OptionTLSConfig:
		if !c.isTLS {
			return mangos.ErrBadOption
		}
		if b, ok := v.(*tls.Config); ok && b != nil {
			c.tls = b
			return nil
		}
		return mangos.ErrBadValue
	case OptionObserver:
		if v == nil {
			c.obs = nil
			return nil
		}
		if b, ok := v.(Observer); ok {
			c.obs = b
			return nil
		}
		return mangos.ErrBadValue
	case OptionLimits:
		if b, ok := v.(Limits); ok {
			c.limits = b
			return nil
		}
		return mangos.ErrBadValue
	}
	return mangos.ErrBadOption
}

func (c *config) get(name string) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch name {
	case mangos.OptionMaxRecvSize:
		return c.maxRecv, nil
	case mangos.OptionKeepAliveTime:
		return c.keepAlive, nil
	case mangos.OptionKeepAlive:
		return c.keepAlive >= 0, nil
	case mangos.OptionNoDelay:
		return c.noDelay, nil
	case mangos.OptionTLSConfig:
		if c.isTLS {
			return c.tls, nil
		}
	case OptionObserver:
		return c.obs, nil
	case OptionLimits:
		return c.limits, nil
	}
	return nil, mangos.ErrBadOption
}

// snapshot is a copy of the settings a pipe needs.
type snapshot struct {
	maxRecv   int
	keepAlive time.Duration
	noDelay   bool
	tls       *tls.Config
	obs       Observer // never nil: nopObserver when none was set
	limits    Limits   // defaults applied
}

func (c *config) snap() snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	obs := c.obs
	if obs == nil {
		obs = nopObserver{}
	}
	return snapshot{maxRecv: c.maxRecv, keepAlive: c.keepAlive, noDelay: c.noDelay, tls: c.tls,
		obs: obs, limits: c.limits.withDefaults()}
}

type nopObserver struct{}

func (nopObserver) ConnRefused(string)                             {}
func (nopObserver) ConnTimeout(string, error)                      {}
func (nopObserver) HandshakeError(string, error)                   {}
func (nopObserver) DialError(string, error)                        {}
func (nopObserver) Oversize(string, uint16, []byte, uint64) []byte { return nil }

// deadline returns now + d, or the zero time (none) when d < 0.
func deadline(d time.Duration) time.Time {
	if d < 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// setup applies the socket options to a fresh TCP connection.
func (s snapshot) setup(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	_ = tc.SetNoDelay(s.noDelay)
	if s.keepAlive < 0 {
		_ = tc.SetKeepAlive(false)
	}
}

type dialer struct {
	addr  string
	proto mangos.ProtocolInfo
	cfg   *config
}

func (d *dialer) Dial() (transport.Pipe, error) {
	s := d.cfg.snap()
	if d.cfg.isTLS && s.tls == nil {
		return nil, mangos.ErrTLSNoConfig
	}
	dl := deadline(s.limits.HandshakeTimeout)
	nd := net.Dialer{Deadline: dl, KeepAlive: s.keepAlive}
	c, err := nd.Dial("tcp", d.addr)
	if err != nil {
		if isTimeout(err) {
			err = fmt.Errorf("%w: connect: %v", ErrHandshakeTimeout, err)
		}
		s.obs.DialError(d.addr, err)
		return nil, err
	}
	s.setup(c)
	raw := c
	if s.tls != nil {
		cfg := s.tls
		if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(d.addr)
		}
		c = tls.Client(c, cfg)
	}
	return handshake(c, raw, d.proto, s, dl, false)
}

func (d *dialer) SetOption(name string, v any) error { return d.cfg.set(name, v) }
func (d *dialer) GetOption(name string) (any, error) { return d.cfg.get(name) }

type listener struct {
	scheme string
	addr   string
	proto  mangos.ProtocolInfo
	cfg    *config

	mu     sync.Mutex
	l      net.Listener
	conns  map[net.Conn]bool // handshaking
	live   int               // connections held: handshaking or piped
	closed bool
	ready  chan *pipe
	closeq chan struct{}
	wg     sync.WaitGroup
}

func (l *listener) Listen() error {
	s := l.cfg.snap()
	if l.cfg.isTLS && s.tls == nil {
		return mangos.ErrTLSNoConfig
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return mangos.ErrClosed
	}
	if l.l != nil {
		return mangos.ErrAddrInUse
	}
	lc := net.ListenConfig{KeepAlive: s.keepAlive}
	nl, err := lc.Listen(context.Background(), "tcp", l.addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return mangos.ErrAddrInUse
		}
		return err
	}
	l.l = nl
	l.wg.Add(1)
	go l.accept(nl)
	return nil
}

// accept hands each connection to its own handshake goroutine, so a slow
// or silent peer cannot hold up the others.
func (l *listener) accept(nl net.Listener) {
	defer l.wg.Done()
	backoff := time.Millisecond
	for {
		c, err := nl.Accept()
		if err != nil {
			select {
			case <-l.closeq:
				return
			default:
			}
			// Out of descriptors or similar: back off, don't spin.
			t := time.NewTimer(backoff)
			select {
			case <-l.closeq:
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = time.Millisecond
		s := l.cfg.snap()
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return
		}
		if s.limits.MaxConns > 0 && l.live >= s.limits.MaxConns {
			l.mu.Unlock()
			l.refuse(c, s)
			continue
		}
		l.live++
		l.conns[c] = true
		l.wg.Add(1)
		l.mu.Unlock()
		go l.serve(c, s)
	}
}

// refuse closes a connection past the cap at once, with a reset so that
// neither side keeps it in TIME_WAIT.
func (l *listener) refuse(c net.Conn, s snapshot) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	remote := c.RemoteAddr().String()
	c.Close()
	s.obs.ConnRefused(remote)
}

// release gives back the connection slot of a pipe or failed handshake.
func (l *listener) release() {
	l.mu.Lock()
	l.live--
	l.mu.Unlock()
}

func (l *listener) serve(raw net.Conn, s snapshot) {
	defer l.wg.Done()
	s.setup(raw)
	c := raw
	if s.tls != nil {
		c = tls.Server(raw, s.tls)
	}
	p, err := handshake(c, raw, l.proto, s, deadline(s.limits.HandshakeTimeout), true)
	l.mu.Lock()
	delete(l.conns, raw)
	l.mu.Unlock()
	if err != nil {
		l.release() // handshake closed the connection
		return
	}
	p.onClose = l.release
	select {
	case l.ready <- p:
	case <-l.closeq:
		p.Close()
	}
}

func (l *listener) Accept() (transport.Pipe, error) {
	l.mu.Lock()
	listening := l.l != nil
	l.mu.Unlock()
	if !listening {
		return nil, mangos.ErrClosed
	}
	select {
	case p := <-l.ready:
		return p, nil
	case <-l.closeq:
		return nil, mangos.ErrClosed
	}
}

func (l *listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.closeq)
	if l.l != nil {
		l.l.Close()
	}
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
	return nil
}

func (l *listener) Address() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.l != nil {
		return l.scheme + "://" + l.l.Addr().String()
	}
	return l.scheme + "://" + l.addr
}

func (l *listener) SetOption(name string, v any) error { return l.cfg.set(name, v) }
func (l *listener) GetOption(name string) (any, error) { return l.cfg.get(name) }
