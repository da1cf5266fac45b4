package sptcp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"
)

// byteConn is a net.Conn that reads from a fixed byte slice.
type byteConn struct {
	r *bytes.Reader
}

func (c byteConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c byteConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c byteConn) Close() error                     { return nil }
func (c byteConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c byteConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c byteConn) SetDeadline(time.Time) error      { return nil }
func (c byteConn) SetReadDeadline(time.Time) error  { return nil }
func (c byteConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzRecv feeds arbitrary bytes (what follows the handshake) to a pipe's
// reader: it never panics, never returns more bytes than arrived, and
// refuses frames over the limit.
func FuzzRecv(f *testing.F) {
	f.Add([]byte{}, uint16(0))
	f.Add(frame([]byte("hello")), uint16(100))
	f.Add(append(frame(nil), frame(make([]byte, 300))...), uint16(200))
	f.Add(binary.BigEndian.AppendUint64(nil, 1<<62), uint16(0))
	f.Add(binary.BigEndian.AppendUint64(nil, 1<<30), uint16(0))
	f.Add(frame(make([]byte, 9000))[:5000], uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		c := byteConn{bytes.NewReader(data)}
		done := make(chan struct{})
		close(done)
		p := &pipe{
			c: c, raw: c, br: bufio.NewReaderSize(c, MinReadBuffer), maxRecv: int(limit),
			wake: make(chan struct{}, 1), done: done, shrinkEvery: time.Second,
		}
		p.space.L = &p.mu
		got := 0
		for {
			m, err := p.Recv()
			if err != nil {
				break
			}
			if limit > 0 && len(m.Body) > int(limit) {
				t.Fatalf("got a %d-byte frame, want at most %d", len(m.Body), limit)
			}
			got += 8 + len(m.Body)
			m.Free()
		}
		if got > len(data) {
			t.Fatalf("got %d bytes of frames from %d bytes of input", got, len(data))
		}
	})
}
