package discovery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/spmesh/spmesh/internal/logx"
)

func TestFirstAddr(t *testing.T) {
	for in, want := range map[string]string{
		"memberlist: Rejected node n1 (10.0.0.9:7946): bad": "10.0.0.9",
		"memberlist: Blocked alive message from=[::1]:7946": "::1",
		"memberlist: failed to receive: unacceptable label": "",
		"memberlist: Decrypt packet failed from 10.1.2.3":   "10.1.2.3",
	} {
		if got := firstAddr(in); got != want {
			t.Errorf("firstAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMemberlistLinesRated floods one gossip refusal from one address
// through the memberlist log adapter: every one is counted, one line is
// logged, under a spmesh-prefixed message and with no "component" key.
func TestMemberlistLinesRated(t *testing.T) {
	var buf bytes.Buffer
	lg := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("component", "app")
	var refused atomic.Uint64
	var logs logx.Limiter
	std := newStdLogger(lg, &refused, &logs)
	for i := range 50 {
		std.Printf("[WARN] memberlist: Rejected node n%d (10.0.0.9:%d): label", i, 7000+i)
	}
	std.Printf("[INFO] memberlist: Suspect n1 has failed")
	if refused.Load() != 50 {
		t.Errorf("refused = %d, want 50", refused.Load())
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		lines = append(lines, l)
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m["component"] != "app" {
			t.Errorf("the user's component key was overridden or lost: %s", l)
		}
		if !strings.HasPrefix(fmt.Sprint(m["msg"]), "spmesh: memberlist: ") {
			t.Errorf("memberlist line without the spmesh prefix: %s", l)
		}
		if strings.Count(l, `"component"`) != 1 {
			t.Errorf("duplicate component key: %s", l)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2 (one refusal, one info):\n%s", len(lines), buf.String())
	}
}
