// Package foreign is an spmesh peer written from WIRE.md alone, as a C or
// Python programmer would write one: the SP/TCP transport (WIRE.md section
// 1), a little msgpack and the envelope (sections 2 and 3), the batch
// rules. It imports only the standard library (TestImportsOnlyStd checks
// it), never spmesh's own encoder, so that the tests that drive spmesh
// sockets with it (reqrep, pipeline and pubsub's foreign_test.go) check
// the document, not the code against itself. Where it and spmesh
// disagree, WIRE.md is wrong or unclear. It is for tests only.
package foreign

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// SP protocol ids (WIRE.md section 1, "Sockets per pattern").
const (
	Pub        = 0x20
	Sub        = 0x21
	Req        = 0x30
	Rep        = 0x31
	Push       = 0x50
	Pull       = 0x51
	Surveyor   = 0x62
	Respondent = 0x63
)

// peerOf is the protocol each socket talks to.
var peerOf = map[uint16]uint16{Pub: Sub, Sub: Pub, Req: Rep, Rep: Req, Push: Pull, Pull: Push, Surveyor: Respondent, Respondent: Surveyor}

// MaxFrame is the largest frame Conn reads (spmesh's default limit).
const MaxFrame = 8 << 20

// Conn is one SP connection over TCP.
type Conn struct {
	c net.Conn
}

// Dial connects to addr ("tcp://host:port") and does the SP handshake as
// protocol proto, checking that the peer speaks proto's peer protocol.
func Dial(addr string, proto uint16) (*Conn, error) {
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(addr, "tcp://"), 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// 00 'S' 'P' 00, protocol id (16-bit big endian), two zero bytes.
	if _, err := c.Write([]byte{0, 'S', 'P', 0, byte(proto >> 8), byte(proto), 0, 0}); err != nil {
		c.Close()
		return nil, err
	}
	var hs [8]byte
	if _, err := io.ReadFull(c, hs[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if hs[0] != 0 || hs[1] != 'S' || hs[2] != 'P' || hs[3] != 0 || hs[6] != 0 || hs[7] != 0 {
		c.Close()
		return nil, fmt.Errorf("handshake: got % x, want 00 53 50 00 PP PP 00 00", hs)
	}
	if got := binary.BigEndian.Uint16(hs[4:]); got != peerOf[proto] {
		c.Close()
		return nil, fmt.Errorf("handshake: peer protocol 0x%02x, want 0x%02x", got, peerOf[proto])
	}
	c.SetDeadline(time.Time{})
	return &Conn{c: c}, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// Send writes one frame: a 64-bit big-endian length, the SP header words
// hdr (REQ request or SURVEYOR survey ids, 32-bit big endian), the body.
func (c *Conn) Send(body []byte, hdr ...uint32) error {
	b := binary.BigEndian.AppendUint64(nil, uint64(4*len(hdr)+len(body)))
	for _, h := range hdr {
		b = binary.BigEndian.AppendUint32(b, h)
	}
	c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.c.Write(append(b, body...))
	return err
}

// ErrTimeout is Recv's error when no frame arrived in time.
var ErrTimeout = errors.New("foreign: no frame in time")

// Recv reads one frame within d and returns what follows its length (SP
// header words included).
func (c *Conn) Recv(d time.Duration) ([]byte, error) {
	c.c.SetReadDeadline(time.Now().Add(d))
	var h [8]byte
	if _, err := io.ReadFull(c.c, h[:]); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, ErrTimeout
		}
		return nil, err
	}
	n := binary.BigEndian.Uint64(h[:])
	if n > MaxFrame {
		return nil, fmt.Errorf("frame of %d bytes, over %d", n, MaxFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.c, b); err != nil {
		return nil, err
	}
	return b, nil
}

// Request sends body as a REQ request (or a SURVEYOR survey) with SP id
// id (the high bit is set here) and returns the body of the reply, after
// checking that the reply echoes the id.
func (c *Conn) Request(id uint32, body []byte, d time.Duration) ([]byte, error) {
	id |= 0x80000000
	if err := c.Send(body, id); err != nil {
		return nil, err
	}
	b, err := c.Recv(d)
	if err != nil {
		return nil, err
	}
	if len(b) < 4 || binary.BigEndian.Uint32(b) != id {
		return nil, fmt.Errorf("reply % x does not start with request id %08x", b[:min(len(b), 4)], id)
	}
	return b[4:], nil
}
