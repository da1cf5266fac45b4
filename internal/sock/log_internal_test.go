package sock

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/logx"
	"github.com/spmesh/spmesh/internal/testutil"
)

// syncBuf is a bytes.Buffer safe for the handler's concurrent writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }

// lines returns the records logged so far, failing the test on a record
// with a key twice at its top level.
func (s *syncBuf) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	raw := append([]byte(nil), s.b.Bytes()...)
	s.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		if k := dupKey(l); k != "" {
			t.Errorf("record with key %q twice: %s", k, l)
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("bad record %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// dupKey returns a key present twice in the top level of a JSON object.
func dupKey(obj []byte) string {
	d := json.NewDecoder(bytes.NewReader(obj))
	if _, err := d.Token(); err != nil {
		return ""
	}
	seen := map[string]bool{}
	for d.More() {
		tk, err := d.Token()
		if err != nil {
			return ""
		}
		k, _ := tk.(string)
		if seen[k] {
			return k
		}
		seen[k] = true
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}

func count(recs []map[string]any, msg string) (n int, last map[string]any) {
	for _, r := range recs {
		if r["msg"] == msg {
			n, last = n+1, r
		}
	}
	return n, last
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestRefusalsLoggedOncePerPeerPerInterval floods a replier over real TCP
// from one host with two refusals, garbage instead of the SP handshake and
// frames over the size limit (claiming far more, and a little more), one
// connection each: every
// one is counted, one line per kind is logged per interval, and the first
// line after the interval says how many were not logged. The user's logger
// carries its own "component" key: no record has a key twice.
func TestRefusalsLoggedOncePerPeerPerInterval(t *testing.T) {
	var buf syncBuf
	lg := slog.New(slog.NewJSONHandler(&buf, nil)).With("component", "app")
	s := DefaultSettings()
	s.Logger = lg
	s.MaxMsgSize = 1024
	so, err := Open(Rep, s, Wiring{})
	if err != nil {
		t.Fatal(err)
	}
	defer so.Close()
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	so.logs.Now = clk.now // before any connection
	addr, err := so.Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hp := strings.TrimPrefix(addr, "tcp://")

	const flood = 40
	garbage := func() {
		c, err := net.Dial("tcp", hp)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	}
	oversize := func() {
		r := testutil.DialSP(t, addr, 0x30) // REQ
		var h [8]byte
		binary.BigEndian.PutUint64(h[:], 1<<40)
		r.C.Write(h[:])
		r.C.Close()
		// And a frame a little over the limit, read and dropped (answered
		// with an error if it is a request).
		r = testutil.DialSP(t, addr, 0x30)
		r.Send(make([]byte, 2048), 0x80000001)
		r.C.Close()
	}
	waitFor := func(hs, big uint64) {
		t.Helper()
		testutil.Eventually(t, 10*time.Second, func() error {
			if got, got2 := so.C.HandshakeErrors.Load(), so.C.TooLarge.Load(); got != hs || got2 != big {
				return fmt.Errorf("handshake errors %d, too large %d; want %d, %d", got, got2, hs, big)
			}
			return nil
		})
	}
	for range flood {
		garbage()
		oversize()
	}
	waitFor(flood, 2*flood)

	const hsMsg = "spmesh: handshake failed"
	const bigMsg = "spmesh: frame over the size limit: connection closed"
	const dropMsg = "spmesh: received frame over the size limit dropped"
	var recs []map[string]any
	testutil.Eventually(t, 10*time.Second, func() error {
		recs = buf.lines(t)
		for _, m := range []string{hsMsg, bigMsg, dropMsg} {
			if n, _ := count(recs, m); n < 1 {
				return fmt.Errorf("%q not logged", m)
			}
		}
		return nil
	})
	for _, m := range []string{hsMsg, bigMsg, dropMsg} {
		n, last := count(recs, m)
		if n != 1 {
			t.Errorf("%q logged %d times in one interval, want once", m, n)
			continue
		}
		if _, ok := last[logx.Suppressed]; ok {
			t.Errorf("the first %q line carries %q", m, logx.Suppressed)
		}
		if r, _ := last[logx.Remote].(string); !strings.HasPrefix(r, "127.0.0.1:") {
			t.Errorf("%q: remote = %v, want the peer's address", m, last[logx.Remote])
		}
	}

	// Within the interval: still nothing more.
	clk.add(logx.Every - time.Millisecond)
	garbage()
	oversize()
	waitFor(flood+1, 2*flood+2)
	// A line is offered to the limiter after its count: wait for both
	// to be seen suppressed before the clock moves on.
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, m := range []string{hsMsg, bigMsg, dropMsg} {
			if n := so.logs.Pending("127.0.0.1", m); n != flood {
				return fmt.Errorf("%q: %d suppressed, want %d", m, n, flood)
			}
		}
		return nil
	})
	recs = buf.lines(t)
	for _, m := range []string{hsMsg, bigMsg, dropMsg} {
		if n, _ := count(recs, m); n != 1 {
			t.Errorf("%q logged %d times before the interval ended, want once", m, n)
		}
	}

	// After it: one line, with the count of those not logged.
	clk.add(time.Millisecond)
	garbage()
	oversize()
	waitFor(flood+2, 2*flood+4)
	// A record is written after its count: wait for the lines.
	testutil.Eventually(t, 10*time.Second, func() error {
		recs = buf.lines(t)
		for _, m := range []string{hsMsg, bigMsg, dropMsg} {
			if n, _ := count(recs, m); n < 2 {
				return fmt.Errorf("%q logged %d times, want 2", m, n)
			}
		}
		return nil
	})
	for _, m := range []string{hsMsg, bigMsg, dropMsg} {
		n, last := count(recs, m)
		if n != 2 {
			t.Errorf("%q logged %d times over two intervals, want twice", m, n)
			continue
		}
		if got := last[logx.Suppressed]; got != float64(flood) {
			t.Errorf("%q: %s = %v, want %d", m, logx.Suppressed, got, flood)
		}
	}
	for _, r := range recs {
		if msg, _ := r["msg"].(string); !strings.HasPrefix(msg, "spmesh: ") {
			t.Errorf("message without the spmesh prefix: %v", r)
		}
	}
}
