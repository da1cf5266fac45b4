//go:build linux

package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
)

// TestRoles runs one role per process, as on separate hosts: a sink (the
// seed), then two workers and a producer joined through the sink's gossip
// address, the only address given. The producer finishes the run and exits;
// the others stop gracefully on SIGTERM.
func TestRoles(t *testing.T) {
	dir := t.TempDir()
	start := func(args ...string) *running {
		return startProc(t, append(args, "-gossip", "127.0.0.1:0")...)
	}
	wait := func(name string, r *running) {
		t.Helper()
		if err := r.wait(t, name, 60*time.Second); err != nil {
			t.Fatalf("%s: got %v, want exit status 0; output:\n%s", name, err, r.out.String())
		}
	}

	sink := start("-role", "sink", "-name", "sink", "-out", filepath.Join(dir, "out"), "-metrics", "127.0.0.1:0")
	var seed string
	testutil.Eventually(t, 30*time.Second, func() error {
		m := regexp.MustCompile(`others join with -join (\S+)"`).FindStringSubmatch(sink.out.String())
		if m == nil {
			return fmt.Errorf("sink output: got\n%s\nwant its gossip address", sink.out.String())
		}
		seed = m[1]
		return nil
	})
	w1 := start("-role", "worker", "-name", "w1", "-join", seed, "-size", "320", "-thumb", "80", "-work", "10ms")
	w2 := start("-role", "worker", "-name", "w2", "-join", seed, "-size", "320", "-thumb", "80", "-work", "10ms", "-transform", "ladder")
	prod := start("-role", "producer", "-join", seed, "-n", "9", "-size", "320", "-run", "roles-test")
	wait("producer", prod)
	if out := prod.out.String(); !strings.Contains(out, "processed     9 of 9 images") || !strings.Contains(out, "none lost") {
		t.Fatalf("producer output: got\n%s\nwant 9 of 9 images processed, none lost", out)
	}
	// The summary's service times: a mean job time per worker, positive.
	m := regexp.MustCompile(`service time  (w1|w2) (\S+), (w1|w2) (\S+) `).FindStringSubmatch(prod.out.String())
	if m == nil || m[1] == m[3] {
		t.Fatalf("producer output: got\n%s\nwant a service time for w1 and w2", prod.out.String())
	}
	for _, s := range []string{m[2], m[4]} {
		if d, err := time.ParseDuration(s); err != nil || d <= 0 {
			t.Errorf("service time %q: want a positive duration", s)
		}
	}
	// A scrape of the sink (still running) returns its spmesh_ series.
	scrapeSink(t, sink.out)
	for _, r := range []*running{w1, w2, sink} {
		_ = r.Cmd.Process.Signal(syscall.SIGTERM)
	}
	wait("w1", w1)
	wait("w2", w2)
	wait("sink", sink)
	if out := sink.out.String(); !strings.Contains(out, "run roles-test: 9 images stored, 0 missing") {
		t.Fatalf("sink output: got\n%s\nwant the finished run", out)
	}
	thumbs, _ := filepath.Glob(filepath.Join(dir, "out", "roles-test", "thumbs", "*.png"))
	if len(thumbs) != 9 {
		t.Fatalf("thumbnails: got %d, want 9", len(thumbs))
	}
	if _, err := readPNG(filepath.Join(dir, "out", "roles-test", "contact-sheet.png")); err != nil {
		t.Fatalf("contact sheet: %v", err)
	}
}

// scrapeSink finds the sink's /metrics address in its log and checks that
// a scrape holds its sockets' and its node's series, after a run of 9
// images: 9 results stored (at least once: redeliveries count too).
func scrapeSink(t *testing.T, out *testutil.Buffer) {
	t.Helper()
	m := regexp.MustCompile(`metrics on (http://\S+/metrics)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("sink output: got\n%s\nwant its metrics address", out.String())
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: status %d, %v", m[1], resp.StatusCode, err)
	}
	series := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && strings.HasPrefix(k, "spmesh_") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("scrape: line %q: %v", line, err)
			}
			series[k] = f
		}
	}
	for k, min := range map[string]float64{
		`spmesh_messages_received_total{role="worker",service="imagepipeline.results"}`: 9,
		`spmesh_acked_total{role="worker",service="imagepipeline.results"}`:             9,
		`spmesh_messages_sent_total{role="publisher",service="imagepipeline.events"}`:   9,
		`spmesh_discovery_members{node="sink",state="alive"}`:                           1,
	} {
		if v, ok := series[k]; !ok || v < min {
			t.Errorf("scrape: %s: got %v (present: %v), want at least %v", k, v, ok, min)
		}
	}
}
