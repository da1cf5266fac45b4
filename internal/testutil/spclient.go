package testutil

import (
	"encoding/binary"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/hostile"
)

// SP protocol numbers, for RawSP (hostile's).
const (
	ProtoReq      = hostile.ProtoReq
	ProtoSub      = hostile.ProtoSub
	ProtoPull     = hostile.ProtoPull
	ProtoSurveyor = hostile.ProtoSurveyor
)

// RawSP is a bare SP/TCP connection for hostile-peer tests: it does the
// SP handshake as protocol proto, then writes frames as the test says and
// reads nothing unless asked (a peer that never reads its replies). It is
// a hostile.Conn (the hostile-peer suite's client) bound to the test.
type RawSP struct {
	C  net.Conn
	hc *hostile.Conn
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
	c, err := d.Dial("tcp", hostile.HostPort(addr))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	hc := hostile.NewConn(c)
	if err := hc.Handshake(proto); err != nil {
		t.Fatalf("%s: %v", addr, err)
	}
	return &RawSP{C: c, hc: hc}
}

// ListenSP listens on addr (tcp://host:port), takes one connection within
// 10s and does the SP handshake as protocol proto: a raw peer for a socket
// that dials. The listener and connection are closed when the test ends.
func ListenSP(t testing.TB, addr string, proto uint16) *RawSP {
	t.Helper()
	l, err := net.Listen("tcp", hostile.HostPort(addr))
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
	hc := hostile.NewConn(c)
	if err := hc.Handshake(proto); err != nil {
		t.Fatalf("%s: %v", addr, err)
	}
	return &RawSP{C: c, hc: hc}
}

// Send writes one frame: the SP header words hdr (each a uint32, big
// endian), then body.
func (r *RawSP) Send(body []byte, hdr ...uint32) error {
	parts := make([][]byte, 0, len(hdr)+1)
	for _, h := range hdr {
		parts = append(parts, binary.BigEndian.AppendUint32(nil, h))
	}
	return r.hc.Frame(append(parts, body)...)
}

// Recv reads one frame within d (at most 64 MiB).
func (r *RawSP) Recv(d time.Duration) ([]byte, error) { return r.hc.ReadFrame(d, 64<<20) }

// Percentile returns the p-th percentile (0 < p <= 1) of ds, sorted in place.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds))*p+0.5) - 1
	return ds[max(0, min(i, len(ds)-1))]
}
