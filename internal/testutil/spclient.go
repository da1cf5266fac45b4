package testutil

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SP protocol numbers, for RawSP.
const (
	ProtoReq      = 3<<4 + 0
	ProtoSub      = 2<<4 + 1
	ProtoSurveyor = 6<<4 + 2
	ProtoPull     = 5<<4 + 1
)

// RawSP is a bare SP/TCP connection for hostile-peer tests: it does the
// SP handshake as protocol proto, then writes frames as the test says and
// reads nothing unless asked (a peer that never reads its replies).
type RawSP struct {
	C net.Conn
}

// DialSP connects to addr (tcp://host:port) and does the SP handshake as
// protocol proto. The connection is closed when the test ends.
func DialSP(t testing.TB, addr string, proto uint16) *RawSP {
	t.Helper()
	return DialSPBuffer(t, addr, proto, 0)
}

// DialSPBuffer is DialSP with the socket's receive buffer set to rcvbuf
// bytes before connecting (0: the system's), so that what it does not read
// backs up into its peer soon.
func DialSPBuffer(t testing.TB, addr string, proto uint16, rcvbuf int) *RawSP {
	t.Helper()
	hp := strings.TrimPrefix(addr, "tcp://")
	d := net.Dialer{Timeout: 5 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	c, err := d.Dial("tcp", hp)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := handshakeSP(c, proto); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return &RawSP{C: c}
}

// ListenSP listens on addr (tcp://host:port), takes one connection within
// 10s and does the SP handshake as protocol proto: a raw peer for a socket
// that dials. The listener and connection are closed when the test ends.
func ListenSP(t testing.TB, addr string, proto uint16) *RawSP {
	t.Helper()
	l, err := net.Listen("tcp", strings.TrimPrefix(addr, "tcp://"))
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	defer l.Close()
	l.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("accept on %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := handshakeSP(c, proto); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return &RawSP{C: c}
}

// handshakeSP exchanges SP headers on c as protocol proto.
func handshakeSP(c net.Conn, proto uint16) error {
	hs := []byte{0, 'S', 'P', 0, byte(proto >> 8), byte(proto), 0, 0}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(hs); err != nil {
		return err
	}
	var peer [8]byte
	_, err := io.ReadFull(c, peer[:])
	return err
}

// Send writes one frame: the SP header words hdr (each a uint32, big
// endian), then body.
func (r *RawSP) Send(body []byte, hdr ...uint32) error {
	b := make([]byte, 8, 8+4*len(hdr)+len(body))
	binary.BigEndian.PutUint64(b, uint64(4*len(hdr)+len(body)))
	for _, h := range hdr {
		b = binary.BigEndian.AppendUint32(b, h)
	}
	b = append(b, body...)
	_, err := r.C.Write(b)
	return err
}

// Recv reads one frame within d.
func (r *RawSP) Recv(d time.Duration) ([]byte, error) {
	r.C.SetReadDeadline(time.Now().Add(d))
	defer r.C.SetReadDeadline(time.Time{})
	var h [8]byte
	if _, err := io.ReadFull(r.C, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint64(h[:])
	if n > 64<<20 {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r.C, b)
	return b, err
}

// Percentile returns the p-th percentile (0 < p <= 1) of ds, sorted in place.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds))*p+0.5) - 1
	return ds[max(0, min(i, len(ds)-1))]
}
