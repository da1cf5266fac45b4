package logx

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"
)

// clock is a settable time for the limiter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func records(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("bad record %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestLimiterOncePerPeerPerInterval(t *testing.T) {
	var buf bytes.Buffer
	lg := slog.New(slog.NewJSONHandler(&buf, nil))
	c := &clock{t: time.Unix(1000, 0)}
	l := &Limiter{Now: c.now}
	for i := 0; i < 100; i++ {
		l.Log(lg, slog.LevelWarn, "10.0.0.1", "spmesh: refused", Remote, "10.0.0.1:"+strconv.Itoa(4000+i))
	}
	l.Log(lg, slog.LevelWarn, "10.0.0.2", "spmesh: refused", Remote, "10.0.0.2:1")
	l.Log(lg, slog.LevelWarn, "10.0.0.1", "spmesh: other", Remote, "10.0.0.1:1")
	recs := records(t, &buf)
	if len(recs) != 3 {
		t.Fatalf("got %d lines, want 3 (one per kind per peer): %v", len(recs), recs)
	}
	if _, ok := recs[0][Suppressed]; ok {
		t.Errorf("first line carries %q: %v", Suppressed, recs[0])
	}
	buf.Reset()
	c.add(Every - time.Millisecond)
	l.Log(lg, slog.LevelWarn, "10.0.0.1", "spmesh: refused", Remote, "10.0.0.1:1")
	if n := len(records(t, &buf)); n != 0 {
		t.Fatalf("a line within the interval went through")
	}
	c.add(time.Millisecond)
	l.Log(lg, slog.LevelWarn, "10.0.0.1", "spmesh: refused", Remote, "10.0.0.1:1")
	recs = records(t, &buf)
	if len(recs) != 1 {
		t.Fatalf("got %d lines after the interval, want 1", len(recs))
	}
	if got := recs[0][Suppressed]; got != float64(100) {
		t.Errorf("suppressed = %v, want 100 (99 in the flood and 1 before the interval ended)", got)
	}
}

func TestLimiterDisabledLevelCountsNothing(t *testing.T) {
	var buf bytes.Buffer
	lg := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var l Limiter
	l.Log(lg, slog.LevelDebug, "p", "spmesh: x")
	l.Log(nil, slog.LevelWarn, "p", "spmesh: x")
	if buf.Len() != 0 || len(l.m) != 0 {
		t.Fatalf("a disabled level was logged or remembered: %q, %d keys", buf.String(), len(l.m))
	}
}

func TestLimiterBounded(t *testing.T) {
	var buf bytes.Buffer
	lg := slog.New(slog.NewJSONHandler(&buf, nil))
	c := &clock{t: time.Unix(1000, 0)}
	l := &Limiter{Now: c.now}
	for i := 0; i < 3*maxKeys; i++ {
		l.Log(lg, slog.LevelWarn, "n"+strconv.Itoa(i), "spmesh: refused")
	}
	if len(l.m) > maxKeys+1 {
		t.Fatalf("limiter holds %d keys, more than %d", len(l.m), maxKeys+1)
	}
	if n := len(records(t, &buf)); n != maxKeys+1 {
		t.Fatalf("got %d lines, want %d (one per remembered peer, one for the rest)", n, maxKeys+1)
	}
	c.add(Every)
	l.Log(lg, slog.LevelWarn, "new", "spmesh: refused")
	if _, ok := l.m[key{"spmesh: refused", "new"}]; !ok {
		t.Fatalf("expired peers not swept: a new peer is not remembered")
	}
}

func TestPeerKey(t *testing.T) {
	for in, want := range map[string]string{"10.0.0.1:99": "10.0.0.1", "[::1]:7": "::1", "node-a": "node-a", "": ""} {
		if got := PeerKey(in); got != want {
			t.Errorf("PeerKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkLimiterSuppressed is the cost of a refusal logged while its
// peer's line for the interval has gone out: what a flood pays per frame.
func BenchmarkLimiterSuppressed(b *testing.B) {
	lg := slog.New(slog.NewJSONHandler(io.Discard, nil))
	var l Limiter
	l.Log(lg, slog.LevelWarn, "10.0.0.1", "spmesh: refused", Remote, "10.0.0.1:1")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		l.Log(lg, slog.LevelWarn, "10.0.0.1", "spmesh: refused", Remote, "10.0.0.1:1")
	}
}
