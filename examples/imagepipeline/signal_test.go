//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
)

// startDemo starts the demo with a long run (so that the test can stop it
// midway) and waits until every role has started and images flow.
func startDemo(t *testing.T, args ...string) *running {
	t.Helper()
	dir := t.TempDir()
	summary := filepath.Join(dir, "summary.json")
	r := startProc(t, append([]string{"-n", "500", "-size", "320", "-thumb", "80", "-work", "200ms",
		"-out", filepath.Join(dir, "out"), "-summary", summary}, args...)...)
	r.summary = summary
	testutil.Eventually(t, 60*time.Second, func() error {
		if out := r.out.String(); !regexp.MustCompile(`\] +[1-9][0-9]*/500 `).MatchString(out) {
			return fmt.Errorf("progress: got output\n%s\nwant images stored", out)
		}
		return nil
	})
	return r
}

// pids returns the children's process ids, from the "started" lines.
func (r *running) pids(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range regexp.MustCompile(`started (\S+) +pid (\d+)`).FindAllStringSubmatch(r.out.String(), -1) {
		pid, _ := strconv.Atoi(m[2])
		out[m[1]] = pid
	}
	if len(out) != 5 {
		t.Fatalf("children: got %v, want a sink, a producer and 3 workers", out)
	}
	return out
}

// TestInterrupt stops the demo with SIGINT (Ctrl-C) midway: the supervisor
// stops the children in order, each finishing its work and leaving the mesh,
// prints the summary of what was done, and exits with status 1.
func TestInterrupt(t *testing.T) {
	r := startDemo(t, "-v")
	pids := r.pids(t)
	if err := r.Cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := r.wait(t, "after SIGINT", 60*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: got %v, want exit status 1; output:\n%s", err, r.out.String())
	}
	out := r.out.String()
	for _, want := range []string{"stopping: producer, workers, then sink", "imagepipeline interrupted",
		"[worker-1] ", "[worker-2] ", "[worker-3] "} {
		if !strings.Contains(out, want) {
			t.Errorf("output: got\n%s\nwant it to contain %q", out, want)
		}
	}
	// Each worker drained and said how many images it made.
	if got := strings.Count(out, `msg="worker done"`); got != 3 {
		t.Errorf("graceful worker exits: got %d, want 3; output:\n%s", got, out)
	}
	for name, pid := range pids {
		if testutil.Alive(pid) {
			t.Errorf("%s (pid %d): still running after the supervisor exited", name, pid)
		}
	}
	data, err := os.ReadFile(r.summary)
	if err != nil {
		t.Fatal(err)
	}
	var sum Summary
	if err := json.Unmarshal(data, &sum); err != nil {
		t.Fatal(err)
	}
	if !sum.Interrupted || sum.Processed == 0 || sum.Processed >= sum.Total {
		t.Fatalf("summary: got interrupted %v, processed %d of %d, want interrupted, some but not all", sum.Interrupted, sum.Processed, sum.Total)
	}
}

// TestSupervisorKilled kills the supervisor hard: its children die with it
// (the parent death signal), none is left behind.
func TestSupervisorKilled(t *testing.T) {
	r := startDemo(t)
	pids := r.pids(t)
	if err := r.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-r.Done()
	testutil.Eventually(t, 20*time.Second, func() error {
		for name, pid := range pids {
			if testutil.Alive(pid) {
				return fmt.Errorf("%s (pid %d): got running, want dead with its supervisor", name, pid)
			}
		}
		return nil
	})
}
