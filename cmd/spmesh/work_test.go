//go:build unix

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pipeline"
)

// readLines returns the lines of the file at path (none while it does not
// exist), sorted.
func readLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	l := strings.Split(strings.TrimSpace(string(b)), "\n")
	slices.Sort(l)
	return l
}

// TestWorkCommand: jobs from produce --outbox, in a mesh, run through
// work --command, each one's body on the command's stdin, the job's id and
// attempt in its environment; work exits after --count acks.
func TestWorkCommand(t *testing.T) {
	t.Parallel()
	_, addr := seed(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	work := start(t, "work", "jobs", "-j", addr, "-v", "--codec", "raw", "--concurrency", "2", "-n", "3",
		"--command", fmt.Sprintf(`l=$(tr a-z A-Z); echo "$l $SPMESH_SERVICE $SPMESH_ATTEMPT ${#SPMESH_JOB_ID}" >> %s`, out)) // one write per job: they run 2 at once
	work.waitLine(work.stderr, `working on jobs at tcp://127\.0\.0\.1:\d+`, waitReady)
	mustRun(t, 0, "first\nsecond\nthird\n", "produce", "jobs", "-j", addr, "--wait", "20s", "--codec", "raw",
		"--outbox", filepath.Join(dir, "outbox"))
	if code := work.wait(waitReady); code != 0 {
		t.Fatalf("got work exit %d, want 0\n%s", code, work)
	}
	want := []string{"FIRST jobs 1 32", "SECOND jobs 1 32", "THIRD jobs 1 32"}
	if got := readLines(out); !slices.Equal(got, want) {
		t.Fatalf("got %q in the output file, want %q\n%s", got, want, work)
	}
	work.waitLine(work.stderr, `acked 3 jobs, nacked 0`, time.Second)
}

// TestWorkRetry: a command that fails is nacked with its exit status and
// the last line of its stderr; the producer sends the job again, and the
// next attempt succeeds.
func TestWorkRetry(t *testing.T) {
	t.Parallel()
	addr := "tcp://" + closedPort(t)
	out := filepath.Join(t.TempDir(), "out")
	work := start(t, "work", "--listen", addr, "-v", "--codec", "raw", "-n", "1", "--command",
		fmt.Sprintf(`if [ "$SPMESH_ATTEMPT" -lt 3 ]; then echo "first line" >&2; echo "disk full ($SPMESH_ATTEMPT)" >&2; exit 7; fi; cat >> %s`, out))
	work.waitLine(work.stderr, `working on jobs at `, waitReady)
	mustRun(t, 0, "", "produce", "--dial", addr, "--codec", "raw", "--timeout", "20s", "payload")
	if code := work.wait(waitReady); code != 0 {
		t.Fatalf("got work exit %d, want 0\n%s", code, work)
	}
	if got := readLines(out); !slices.Equal(got, []string{"payload"}) {
		t.Fatalf("got %q in the output file, want the job once\n%s", got, work)
	}
	work.waitLine(work.stderr, `attempt=1 nacked \(code 7\): disk full \(1\)$`, time.Second)
	work.waitLine(work.stderr, `attempt=2 nacked \(code 7\): disk full \(2\)$`, time.Second)
	work.waitLine(work.stderr, `attempt=3 acked$`, time.Second)
	work.waitLine(work.stderr, `acked 1 jobs, nacked 2`, time.Second)
}

// TestWorkTimeout: a command running past --timeout has its whole process
// group killed (a background grandchild included) and the job is nacked
// with code 124, then sent again.
func TestWorkTimeout(t *testing.T) {
	t.Parallel()
	addr := "tcp://" + closedPort(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	work := start(t, "work", "--listen", addr, "-v", "-n", "1", "--timeout", "2s", "--command",
		fmt.Sprintf(`if [ "$SPMESH_ATTEMPT" = 1 ]; then sleep 60 & echo $! > %s; wait; fi`, pidFile))
	work.waitLine(work.stderr, `working on jobs at `, waitReady)
	mustRun(t, 0, "", "produce", "--dial", addr, "--timeout", "20s", "x")
	if code := work.wait(waitReady); code != 0 {
		t.Fatalf("got work exit %d, want 0\n%s", code, work)
	}
	work.waitLine(work.stderr, `attempt=1 nacked \(code 124\): command killed after --timeout 2s$`, time.Second)
	work.waitLine(work.stderr, `attempt=2 acked$`, time.Second)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if alive(pid) {
			return fmt.Errorf("the command's child sleep (pid %d) still runs", pid)
		}
		return nil
	})
}

// alive reports whether pid runs (a zombie, killed but not yet reaped by
// its new parent, does not).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// TestWorkDedup: with --dedup, a job produced again with the same id is
// acked without running the command again.
func TestWorkDedup(t *testing.T) {
	t.Parallel()
	addr := "tcp://" + closedPort(t)
	out := filepath.Join(t.TempDir(), "out")
	work := start(t, "work", "--listen", addr, "-v", "--codec", "raw", "--dedup", "16", "-n", "2",
		"--command", fmt.Sprintf(`cat >> %s; echo >> %s`, out, out))
	work.waitLine(work.stderr, `working on jobs at `, waitReady)
	p, err := pipeline.NewProducer(pipeline.WithCodec(spmesh.Raw), pipeline.WithDial(addr), pipeline.WithWaitForWorker())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, key := range []string{"a", "a", "b"} {
		r, err := p.Submit(ctx, pipeline.Task{ID: pipeline.JobIDOf(key), Body: []byte(key)})
		if err == nil {
			err = r.Wait(ctx)
		}
		if err != nil {
			t.Fatalf("job %s: %v", key, err)
		}
	}
	if code := work.wait(waitReady); code != 0 {
		t.Fatalf("got work exit %d, want 0\n%s", code, work)
	}
	if got, want := readLines(out), []string{"a", "b"}; !slices.Equal(got, want) {
		t.Fatalf("got %q in the output file, want %q (a once)\n%s", got, want, work)
	}
	work.waitLine(work.stderr, `acked 2 jobs, nacked 0, 1 duplicates acked without running`, time.Second)
}

// TestWorkPrint: without --command, work prints each job (id, attempt,
// headers, body) and acks it.
func TestWorkPrint(t *testing.T) {
	t.Parallel()
	addr := "tcp://" + closedPort(t)
	work := start(t, "work", "--listen", addr, "-v")
	work.waitLine(work.stderr, `working on jobs at `, waitReady)
	mustRun(t, 0, "", "produce", "--dial", addr, "--timeout", "20s", "-H", "k=v", `{"n":1}`)
	work.waitLine(work.stdout, `^job [0-9a-f]{32} attempt=1 k="v" {"n":1}$`, waitReady)
}

// TestWorkUsage: bad flag values exit 2 and name the flag.
func TestWorkUsage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		flag, value, want string
	}{
		{"--concurrency", "0", "--concurrency 0: want at least 1"},
		{"--dedup", "-1", "--dedup -1: want 0 (off) or more"},
		{"--timeout", "-1s", "--timeout -1s: want 0 (no limit) or more"},
	} {
		r := mustRun(t, exitUsage, "", "work", "--listen", "tcp://127.0.0.1:0", c.flag, c.value)
		if !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s %s: got stderr %q, want %q", c.flag, c.value, r.stderr, c.want)
		}
	}
}

// TestWorkDeadLetter: a job whose command always fails runs out of
// attempts; produce reports the last nack (code and stderr's last line).
func TestWorkDeadLetter(t *testing.T) {
	t.Parallel()
	addr := "tcp://" + closedPort(t)
	work := start(t, "work", "--listen", addr, "-v", "--command", `echo "no such image" >&2; exit 3`)
	work.waitLine(work.stderr, `working on jobs at `, waitReady)
	r := mustRun(t, exitRemoteError, "", "produce", "--dial", addr, "--timeout", "20s", "x")
	if !strings.Contains(r.stderr, "dead-lettered") || !strings.Contains(r.stderr, "remote error (code 3): no such image") {
		t.Fatalf("got stderr %q, want the job dead-lettered with the command's code and last stderr line", r.stderr)
	}
}
