package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pipeline"
)

// jobsSeen runs an in-process worker on addr recording the jobs' bodies.
type jobsSeen struct {
	mu     sync.Mutex
	bodies []string
}

func (s *jobsSeen) has(body string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.bodies {
		if b == body {
			return nil
		}
	}
	return fmt.Errorf("job %q not run (got %q)", body, s.bodies)
}

func startWorker(t *testing.T, addr string, s *jobsSeen) {
	t.Helper()
	w, err := pipeline.NewWorker(pipeline.HandlerFunc(func(ctx context.Context, j *pipeline.Job) error {
		var v any
		if err := j.Decode(&v); err != nil {
			return err
		}
		s.mu.Lock()
		s.bodies = append(s.bodies, fmt.Sprint(v))
		s.mu.Unlock()
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if _, err := w.Listen(addr); err != nil {
		t.Fatal(err)
	}
}

// TestProduceOutbox: produce --outbox sends a job and waits for its ack; a
// job not acked within --timeout (no worker) exits 5 and stays in the
// outbox, and the next run on it sends it.
func TestProduceOutbox(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "tcp://" + l.Addr().String()
	l.Close() // a port nobody listens on, for now
	outbox := filepath.Join(t.TempDir(), "jobs.outbox")

	r := mustRun(t, exitNoAnswer, "", "produce", "--dial", addr, "--outbox", outbox, "--timeout", "1s", "first")
	if !strings.Contains(r.stderr, "stay in the outbox") {
		t.Fatalf("got stderr %q, want it to say the job stays in the outbox", r.stderr)
	}

	var s jobsSeen
	startWorker(t, addr, &s)
	mustRun(t, 0, "", "produce", "--dial", addr, "--outbox", outbox, "--timeout", "20s", "-v", "second")
	testutil.Eventually(t, 10*time.Second, func() error { return s.has("first") })
	testutil.Eventually(t, 10*time.Second, func() error { return s.has("second") })

	// Nothing left: a run with no job recovers none.
	r = mustRun(t, 0, "", "produce", "--dial", addr, "--outbox", outbox, "--timeout", "20s", "-v")
	if strings.Contains(r.stderr, "left in the outbox") {
		t.Fatalf("got stderr %q, want no recovered job", r.stderr)
	}
}

// TestProduceOutboxLocked: a second produce on the same outbox is refused.
func TestProduceOutboxLocked(t *testing.T) {
	t.Parallel()
	outbox := filepath.Join(t.TempDir(), "jobs.outbox")
	p, err := pipeline.NewProducer(pipeline.WithOutbox(outbox))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r := mustRun(t, exitError, "", "produce", "--dial", "tcp://127.0.0.1:1", "--outbox", outbox, "x")
	if !strings.Contains(r.stderr, "locked") {
		t.Fatalf("got stderr %q, want it to name the lock", r.stderr)
	}
}

// TestProduceOutboxSync: --outbox-sync runs the periodic fsync mode (a job
// left unacked stays in the outbox for the next run, as in the default
// mode); without --outbox, or out of range, it is a usage error.
func TestProduceOutboxSync(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "tcp://" + l.Addr().String()
	l.Close()
	outbox := filepath.Join(t.TempDir(), "jobs.outbox")

	r := mustRun(t, exitUsage, "", "produce", "--dial", addr, "--outbox-sync", "50ms", "x")
	if !strings.Contains(r.stderr, "--outbox") {
		t.Fatalf("got stderr %q, want it to name --outbox", r.stderr)
	}
	r = mustRun(t, exitUsage, "", "produce", "--dial", addr, "--outbox", outbox, "--outbox-sync", "2h", "x")
	if !strings.Contains(r.stderr, "WithOutboxSync") {
		t.Fatalf("got stderr %q, want it to name the refused option", r.stderr)
	}

	r = mustRun(t, exitNoAnswer, "", "produce", "--dial", addr, "--outbox", outbox, "--outbox-sync", "50ms", "--timeout", "1s", "first")
	if !strings.Contains(r.stderr, "stay in the outbox") {
		t.Fatalf("got stderr %q, want it to say the job stays in the outbox", r.stderr)
	}
	var s jobsSeen
	startWorker(t, addr, &s)
	mustRun(t, 0, "", "produce", "--dial", addr, "--outbox", outbox, "--outbox-sync", "50ms", "--timeout", "20s", "-v")
	testutil.Eventually(t, 10*time.Second, func() error { return s.has("first") })
}
