package hostile_test

import (
	"bufio"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/hostile"
)

// childLimit is the address-space cap of the children: a plain Go process
// starts at about 1.2 GiB of address space, which leaves under 3 GiB for
// the heap, so an allocation from a 32-bit claim (4 to 192 GiB) fails in
// the child instead of taking the host's memory.
const childLimit = 4 << 30

// childBound is the stated allocation bound of one attack in a child:
// 8 times the bytes the attacker sent, plus 4 MiB for the request/reply
// round around it. A 5-byte claim that msgpack's own 1e6-element cap lets
// through ([]struct: ~80 MB) breaks it; so does a header map sized from
// its claim (331 MiB for 8 MiB) or one message per claimed batch entry.
var childBound = hostile.Bound{Per: 8, Slack: 4 << 20}

// childCases are the cases of cmd hostilechild: hostile msgpack bodies
// into typed handlers of each binder and connector that decodes, header
// map and batch claims, cyclic values handed to every sending call.
var childCases = []string{
	"replier", "worker", "respondent", "subscriber",
	"header-replier", "header-subscriber", "batch",
	"cycle-publish", "cycle-request", "cycle-push", "cycle-produce", "cycle-survey",
}

// TestChildUnderAddressCap runs the attacks that once ended the process
// (a fatal out-of-memory from a 6-byte body, a stack overflow from nesting
// or a cyclic value) in child processes capped at childLimit bytes of
// address space, so that a regression fails here instead of taking the
// host down. The child is built without the race detector (whose runtime
// reserves more address space than any cap allows), so the protection
// runs under `go test -race` too.
//
// Figures: go test -run TestChildUnderAddressCap -v ./internal/hostile/
func TestChildUnderAddressCap(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs child processes")
	}
	bin := hostile.BuildChild(t, t.TempDir(), "github.com/spmesh/spmesh/internal/hostile/hostilechild")
	for _, c := range childCases {
		t.Run(c, func(t *testing.T) {
			r := hostile.RunChild(bin, childLimit, 2*time.Minute, c)
			begun, done := "", 0
			legit := false
			var big, small struct {
				name        string
				sent, alloc int64
			}
			sc := bufio.NewScanner(strings.NewReader(r.Stdout))
			for sc.Scan() {
				line := sc.Text()
				f := strings.Fields(line)
				switch {
				case strings.HasPrefix(line, "BEGIN "):
					begun = f[1]
				case strings.HasPrefix(line, "OK "):
					done++
					sent, alloc := field(t, f, "sent"), field(t, f, "alloc")
					if sent >= 1<<20 && alloc > big.alloc {
						big.name, big.sent, big.alloc = f[1], sent, alloc
					}
					if sent < 1<<20 && alloc > small.alloc {
						small.name, small.sent, small.alloc = f[1], sent, alloc
					}
					if err := childBound.Check(f[1]+" allocated", alloc, sent); err != nil {
						t.Error(err)
					}
				case strings.HasPrefix(line, "LEGIT ok"):
					legit = true
				case strings.HasPrefix(line, "FAIL "):
					t.Error(line)
				}
			}
			if r.Err != nil {
				t.Fatalf("child %s: %v after %v, last attack begun %q (%d done)\nstderr (head):\n%s", c, r.Err, r.Elapsed.Round(time.Millisecond), begun, done, head(r.Stderr, 20))
			}
			if !strings.Contains(r.Stdout, "DONE") {
				t.Fatalf("child %s did not finish:\n%s", c, r.Stdout)
			}
			if !legit && !strings.HasPrefix(c, "cycle-") || done == 0 {
				t.Fatalf("child %s: %d attacks done, legit peer served %v:\n%s", c, done, legit, r.Stdout)
			}
			t.Logf("child %s: exit 0 in %v under RLIMIT_AS %d GiB, %d attacks; most allocated by a small frame: %.1f KiB for %d B (%s); by a large one: %.1f MiB for %.1f MiB (%s)",
				c, r.Elapsed.Round(time.Millisecond), childLimit>>30, done,
				float64(small.alloc)/1024, small.sent, small.name, float64(big.alloc)/(1<<20), float64(big.sent)/(1<<20), big.name)
		})
	}
}

// field reads key=<int> from a result line.
func field(t *testing.T, f []string, key string) int64 {
	t.Helper()
	for _, kv := range f {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", kv, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in %q", key, f)
	return 0
}

func head(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
