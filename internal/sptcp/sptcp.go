package sptcp

import (
	"context"
	"crypto/tls"
	"errors"
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
	// HandshakeTimeout bounds connecting plus the TLS and SP handshakes.
	HandshakeTimeout = 10 * time.Second
	// CloseLinger bounds how long Close spends writing buffered frames.
	CloseLinger = 100 * time.Millisecond
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
	}
	return nil, mangos.ErrBadOption
}

// snapshot is a copy of the settings a pipe needs.
type snapshot struct {
	maxRecv   int
	keepAlive time.Duration
	noDelay   bool
	tls       *tls.Config
}

func (c *config) snap() snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return snapshot{maxRecv: c.maxRecv, keepAlive: c.keepAlive, noDelay: c.noDelay, tls: c.tls}
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
	deadline := time.Now().Add(HandshakeTimeout)
	nd := net.Dialer{Deadline: deadline, KeepAlive: s.keepAlive}
	c, err := nd.Dial("tcp", d.addr)
	if err != nil {
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
	p, err := handshake(c, raw, d.proto, s, deadline)
	if err != nil {
		return nil, err
	}
	return p, nil
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
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.conns[c] = true
		l.wg.Add(1)
		l.mu.Unlock()
		go l.serve(c)
	}
}

func (l *listener) serve(raw net.Conn) {
	defer l.wg.Done()
	s := l.cfg.snap()
	s.setup(raw)
	c := raw
	if s.tls != nil {
		c = tls.Server(raw, s.tls)
	}
	p, err := handshake(c, raw, l.proto, s, time.Now().Add(HandshakeTimeout))
	l.mu.Lock()
	delete(l.conns, raw)
	l.mu.Unlock()
	if err != nil {
		return // handshake closed the connection
	}
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
