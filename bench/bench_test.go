package main

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestScenarios runs every cell of the table briefly: each system that is
// built must move messages (or make round trips) in each scenario, and the
// table must render a row for every cell.
func TestScenarios(t *testing.T) {
	tb := run(config{duration: 100 * time.Millisecond, runs: 1})
	for _, sc := range tb.scenarios {
		for _, s := range tb.systems {
			r := tb.cells[sc.name+"/"+s.name]
			switch {
			case r == nil:
				t.Errorf("%s/%s: got no result, want one", sc.name, s.name)
			case errors.Is(r.err, errNotBuilt):
				t.Logf("%s/%s: %v", sc.name, s.name, r.err)
			case r.err != nil:
				t.Errorf("%s/%s: got error %v, want none", sc.name, s.name, r.err)
			case r.latency && len(r.lat) == 0:
				t.Errorf("%s/%s: got no round trips, want some", sc.name, s.name)
			case !r.latency && r.recv == 0:
				t.Errorf("%s/%s: got 0 messages received, want some (sent %d)", sc.name, s.name, r.sent)
			}
		}
	}
	var b strings.Builder
	tb.write(&b)
	if got, want := strings.Count(b.String(), "\n| ")-1, len(tb.scenarios)*len(tb.systems); got != want { // less the header
		t.Errorf("table: got %d rows, want %d\n%s", got, want, b.String())
	}
	t.Log("\n" + b.String())
}

func TestOnly(t *testing.T) {
	c := config{duration: 50 * time.Millisecond, runs: 1}
	c.only = mustCompile(t, "^pubsub-16B/(mangos|nats)$")
	tb := run(c)
	if len(tb.cells) != 2 {
		t.Fatalf("got %d cells, want 2: %v", len(tb.cells), tb.cells)
	}
}

func mustCompile(t *testing.T, s string) *regexp.Regexp {
	t.Helper()
	re, err := regexp.Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	return re
}
