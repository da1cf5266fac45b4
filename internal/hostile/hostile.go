// Package hostile is the attacker's toolbox of spmesh's hostile-peer suite:
// a raw SP/TCP client and listener that do the SP handshake by hand and then
// write whatever they like (garbage, truncated frames, absurd length claims,
// trickles), builders of hostile envelopes and msgpack bodies, heap and
// goroutine measurement, a latency recorder for the legit peers served
// meanwhile, and a runner for child processes under an address-space cap
// (see [BuildChild]).
//
// It is imported by tests only. It imports no pattern package, so that the
// pattern packages' own tests can use it.
//
// Where the suite lives and how to read its figures (each logs them with -v):
//
//	go test -run TestLimit -v ./internal/sptcp/              transport limits, trickle heap, cost of 2,000 idle connections
//	go test -run HostilePeers -v ./reqrep/ ./pipeline/ ./survey/ ./pubsub/
//	                                                           every attack on every socket: heap held and allocated,
//	                                                           legit p99 during vs without (a ratio, reported only)
//	go test -run TestChildUnderAddressCap -v ./internal/hostile/
//	                                                           the attacks that once killed the process, in capped children
//
// Stated bounds: an attack may make its target hold, and allocate beyond
// what the legit traffic does, at most 8 times the bytes it sent plus 8 KiB
// per frame plus 16 MiB ([HeldBound], [AllocBound], [PerFrame]); a child
// attack at most 8 times plus 4 MiB.
package hostile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"
)

// SP protocol numbers (the 16-bit ids exchanged in the handshake).
const (
	ProtoPub        uint16 = 0x20
	ProtoSub        uint16 = 0x21
	ProtoReq        uint16 = 0x30
	ProtoRep        uint16 = 0x31
	ProtoPush       uint16 = 0x50
	ProtoPull       uint16 = 0x51
	ProtoSurveyor   uint16 = 0x62
	ProtoRespondent uint16 = 0x63
)

// IOTimeout bounds every blocking step of a Conn that has no explicit
// timeout (connect, handshake).
const IOTimeout = 10 * time.Second

// Conn is one raw TCP connection to or from an spmesh socket. It counts the
// bytes it wrote (what the target received, at most).
type Conn struct {
	c    net.Conn
	sent atomic.Int64
	// Peer is the protocol the peer announced in its handshake (0 before).
	Peer uint16
}

// HostPort strips a "tcp://" scheme from addr.
func HostPort(addr string) string {
	addr = strings.TrimPrefix(addr, "tcp://")
	return strings.TrimPrefix(addr, "sptcp://")
}

// DialTCP connects to addr ("tcp://host:port" or "host:port") without any
// handshake.
func DialTCP(addr string) (*Conn, error) {
	c, err := net.DialTimeout("tcp", HostPort(addr), IOTimeout)
	if err != nil {
		return nil, err
	}
	return &Conn{c: c}, nil
}

// NewConn wraps c, a TCP connection the caller dialed or accepted (with
// socket options of its own), for a [Conn.Handshake].
func NewConn(c net.Conn) *Conn { return &Conn{c: c} }

// Dial connects to addr and does the SP handshake as protocol proto.
func Dial(addr string, proto uint16) (*Conn, error) {
	c, err := DialTCP(addr)
	if err != nil {
		return nil, err
	}
	if err := c.Handshake(proto); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Handshake sends the SP header of protocol proto and reads the peer's,
// within IOTimeout. It does not check the peer's protocol (see Peer).
func (c *Conn) Handshake(proto uint16) error {
	if err := c.Write(Header(proto)); err != nil {
		return err
	}
	var h [8]byte
	_ = c.c.SetReadDeadline(time.Now().Add(IOTimeout))
	defer c.c.SetReadDeadline(time.Time{})
	if _, err := io.ReadFull(c.c, h[:]); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if h[0] != 0 || h[1] != 'S' || h[2] != 'P' || h[3] != 0 {
		return fmt.Errorf("handshake: got header % x", h)
	}
	c.Peer = binary.BigEndian.Uint16(h[4:])
	return nil
}

// Header is the 8-byte SP/TCP header of protocol proto.
func Header(proto uint16) []byte {
	return []byte{0, 'S', 'P', 0, byte(proto >> 8), byte(proto), 0, 0}
}

// Write writes b as is.
func (c *Conn) Write(b []byte) error {
	_ = c.c.SetWriteDeadline(time.Now().Add(IOTimeout))
	n, err := c.c.Write(b)
	c.sent.Add(int64(n))
	return err
}

// Frame writes one SP/TCP frame: the 64-bit length of the parts, then the
// parts (an SP header such as [ReqID], then an envelope).
func (c *Conn) Frame(parts ...[]byte) error { return c.Write(Frame(parts...)) }

// Frame returns the SP/TCP frame holding parts.
func Frame(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+n), uint64(n))
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// Claim returns an 8-byte length prefix claiming n bytes.
func Claim(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// ReqID is the 4-byte SP header of a REQ request or SURVEYOR survey (the
// high bit marks the end of the backtrace).
func ReqID(id uint32) []byte { return binary.BigEndian.AppendUint32(nil, id|1<<31) }

// Trickle writes b one byte every interval, until all is written, done is
// closed or a write fails (the peer closed): it returns nil in the first
// two cases.
func (c *Conn) Trickle(done <-chan struct{}, b []byte, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for i := range b {
		if err := c.Write(b[i : i+1]); err != nil {
			return err
		}
		if i == len(b)-1 {
			break
		}
		select {
		case <-done:
			return nil
		case <-t.C:
		}
	}
	return nil
}

// ReadFrame reads one frame within timeout; frames over max bytes are an
// error (the attacker allocates nothing from a claim either).
func (c *Conn) ReadFrame(timeout time.Duration, max int) ([]byte, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(timeout))
	defer c.c.SetReadDeadline(time.Time{})
	var h [8]byte
	if _, err := io.ReadFull(c.c, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint64(h[:])
	if n > uint64(max) {
		return nil, fmt.Errorf("frame of %d bytes over %d", n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.c, b); err != nil {
		return nil, err
	}
	return b, nil
}

// ErrStillOpen is WaitClosed's error when the peer kept the connection.
var ErrStillOpen = errors.New("hostile: connection still open")

// WaitClosed reads and discards until the peer closes the connection (EOF
// or reset: nil) or timeout passes (ErrStillOpen).
func (c *Conn) WaitClosed(timeout time.Duration) error {
	_ = c.c.SetReadDeadline(time.Now().Add(timeout))
	defer c.c.SetReadDeadline(time.Time{})
	var b [4096]byte
	for {
		_, err := c.c.Read(b[:])
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return ErrStillOpen
		}
		return nil
	}
}

// Sent is how many bytes were written.
func (c *Conn) Sent() int64 { return c.sent.Load() }

// Close closes the connection; idempotent.
func (c *Conn) Close() error { return c.c.Close() }

// Reset closes the connection with a TCP reset (no TIME_WAIT).
func (c *Conn) Reset() error {
	if tc, ok := c.c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return c.c.Close()
}

// Listener accepts connections from an spmesh connector (a Subscriber or
// Respondent dials it) and does the SP handshake as its protocol.
type Listener struct {
	l     *net.TCPListener
	proto uint16
}

// Listen listens on a loopback port as protocol proto.
func Listen(proto uint16) (*Listener, error) {
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	return &Listener{l: l, proto: proto}, nil
}

// Addr is the address to give the connector ("tcp://127.0.0.1:port").
func (l *Listener) Addr() string { return "tcp://" + l.l.Addr().String() }

// Accept waits up to timeout for the next connection and does the
// handshake.
func (l *Listener) Accept(timeout time.Duration) (*Conn, error) {
	_ = l.l.SetDeadline(time.Now().Add(timeout))
	nc, err := l.l.Accept()
	if err != nil {
		return nil, err
	}
	c := &Conn{c: nc}
	if err := c.Handshake(l.proto); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// Close stops listening (accepted connections stay open).
func (l *Listener) Close() error { return l.l.Close() }
