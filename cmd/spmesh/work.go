package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/pipeline"
	"github.com/urfave/cli/v3"
)

// Flags of work (besides --command, --concurrency, --count, --timeout).
const flagDedup = "dedup"

// Bounds of what a failed job's command reports back as its nack.
const (
	workStderrTail = 4 << 10 // bytes of the command's stderr kept for the nack
	workErrMax     = 512     // bytes of the nack's message (its stderr's last line)
	workTimeoutRC  = 124     // the nack's code for a command killed at --timeout (as timeout(1))
	workWaitDelay  = time.Second
)

func workCommand() *cli.Command {
	return &cli.Command{
		Name:      "work",
		Usage:     "run a service's at-least-once jobs (from produce) with a shell command, acking each one that succeeds",
		ArgsUsage: "SERVICE",
		Description: `work advertises itself as a worker of SERVICE and takes the jobs that producers
(spmesh produce, pipeline.Producer) send it, --concurrency at once, until
interrupted or until --count jobs are acked.

With --command, each job runs "sh -c COMMAND" in a process group of its own,
with the job's body on stdin (as JSON for msgpack, as bytes for raw) and
SPMESH_JOB_ID, SPMESH_ATTEMPT, SPMESH_SERVICE and SPMESH_HEADER_<KEY> in its
environment. Exit status 0 acks the job. The command's stdout and stderr go
to work's own (concurrent jobs' lines may interleave, as with xargs -P); an
ack carries no result back to the producer.
Without --command, work prints each job (id, attempt, headers, body) and
acks it.

What is retried: a command that exits non-zero is a nack whose code is its
exit status and whose message is the last line of its stderr (at most 512
bytes); a command still running after --timeout has its whole process group
killed (SIGKILL) and is a nack with code 124. The producer sends a nacked
job again (here or to another worker) until it runs out of attempts (then
produce reports it as dead-lettered). A job in hand when work is
interrupted gets 5 s to finish, then its process group is killed and the
producer sends it again; a job in hand when work itself is killed is sent
again after the producer's --ack-timeout (its command may go on running).
What is dropped: nothing is acked without running, except with --dedup N: a
job whose id is among the last N this process acked is acked again at once
without running (the window lives in this process only).
At least once: a job can run more than once (a lost ack, a kill); make
COMMAND idempotent, or key it on SPMESH_JOB_ID.

With --dial/--listen and no mesh, give no SERVICE.`,
		Flags: flags(meshFlags(), addrFlags(), []cli.Flag{
			&cli.StringFlag{Name: flagCommand, Aliases: []string{"c"}, Category: "work",
				Usage: "run each job with this shell `command` (sh -c), the job on its stdin: exit 0 acks, anything else nacks (retried)"},
			&cli.IntFlag{Name: flagConcurrency, Category: "work", Value: 1,
				Usage: "run this many jobs at once"},
			&cli.DurationFlag{Name: flagTimeout, Aliases: []string{"t"}, Category: "work",
				Usage: "kill a job's command (its process group) and nack the job after this long (0: no limit but the job's own deadline)"},
			&cli.IntFlag{Name: flagDedup, Category: "work",
				Usage: "remember the ids of the last `N` jobs acked, and ack a job seen again without running it (0: off)"},
			&cli.IntFlag{Name: flagCount, Aliases: []string{"n"}, Category: "work",
				Usage: "exit after this many jobs are acked (0: until interrupted); jobs in hand finish first"},
		}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			conc, dedup, timeout := cmd.Int(flagConcurrency), cmd.Int(flagDedup), cmd.Duration(flagTimeout)
			switch {
			case conc < 1:
				return usagef("--concurrency %d: want at least 1", conc)
			case dedup < 0:
				return usagef("--dedup %d: want 0 (off) or more", dedup)
			case timeout < 0:
				return usagef("--timeout %v: want 0 (no limit) or more", timeout)
			}
			s, service, err := openService(ctx, cmd)
			if err != nil {
				return err
			}
			defer s.close()
			wk := &worker{s: s, service: service, command: cmd.String(flagCommand), timeout: timeout,
				left: cmd.Int(flagCount), end: make(chan struct{})}
			opts := append([]pipeline.Option{pipeline.WithCodec(s.codec), pipeline.WithConcurrency(conc)},
				wiring(s, service, pipeline.WithDiscovery, pipeline.WithListen, pipeline.WithDial, pipeline.WithTLS, pipeline.WithRequireTLS)...)
			if dedup > 0 {
				opts = append(opts, pipeline.WithDedup(dedup, 0))
			}
			w, err := pipeline.NewWorker(pipeline.HandlerFunc(wk.serve), opts...)
			if err != nil {
				return err
			}
			defer w.Close()
			s.logf("working on %s at %s", orDefault(service, "jobs"), strings.Join(w.Addrs(), " "))
			select {
			case <-ctx.Done():
			case <-wk.end:
			}
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			w.Drain(dctx)
			st := w.Stats()
			s.logf("acked %d jobs, nacked %d, %d duplicates acked without running", st.Acked, st.HandlerErrors, st.Duplicates)
			return nil
		},
	}
}

// worker runs the jobs of spmesh work.
type worker struct {
	s       *session
	service string
	command string
	timeout time.Duration

	mu    sync.Mutex // output, left
	left  int        // jobs still to ack with --count; <= 0: no count
	ended bool
	end   chan struct{}
}

func (wk *worker) serve(ctx context.Context, j *pipeline.Job) error {
	if wk.command == "" {
		wk.mu.Lock()
		err := wk.s.printReceived(map[string]any{"id": j.ID.String(), "attempt": j.Attempt},
			fmt.Sprintf("job %s attempt=%d", j.ID, j.Attempt), j.Header, j.Data)
		wk.mu.Unlock()
		if err != nil {
			return err
		}
		wk.acked()
		return nil
	}
	err := wk.run(ctx, j)
	if err != nil {
		var c spmesh.Coder
		if errors.As(err, &c) {
			wk.s.logf("job %s attempt=%d nacked (code %d): %v", j.ID, j.Attempt, c.Code(), err)
		} else {
			wk.s.logf("job %s attempt=%d nacked: %v", j.ID, j.Attempt, err)
		}
		return err
	}
	wk.s.logf("job %s attempt=%d acked", j.ID, j.Attempt)
	wk.acked()
	return nil
}

// acked counts one job acked towards --count.
func (wk *worker) acked() {
	wk.mu.Lock()
	defer wk.mu.Unlock()
	if wk.left <= 0 || wk.ended {
		return
	}
	if wk.left--; wk.left == 0 {
		wk.ended = true
		close(wk.end)
	}
}

// run runs the command with the job on its stdin. Its error is the nack:
// a remote error with the exit status and the last line of stderr.
func (wk *worker) run(ctx context.Context, j *pipeline.Job) error {
	if wk.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wk.timeout)
		defer cancel()
	}
	c := exec.CommandContext(ctx, "sh", "-c", wk.command)
	c.Env = append(append(os.Environ(), "SPMESH_SERVICE="+wk.service), requestEnv("JOB", j.ID.String(), j.Attempt, j.Header)...)
	in := j.Data
	if wk.s.codec.Name() == "msgpack" {
		in = append([]byte(decodeBody(wk.s.codec, j.Data).String()), '\n')
	}
	c.Stdin = bytes.NewReader(in)
	tail := &tailWriter{w: wk.s.stderr, max: workStderrTail}
	c.Stdout, c.Stderr = wk.s.stdout, tail
	ownGroup(c) // the timeout kills the command's children too
	c.WaitDelay = workWaitDelay
	err := c.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && wk.timeout > 0 {
			return spmesh.Errorf(workTimeoutRC, "command killed after --timeout %v", wk.timeout)
		}
		return ctx.Err()
	}
	code := 1
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		code = ee.ExitCode()
	}
	msg := tail.lastLine(workErrMax)
	if msg == "" {
		msg = fmt.Sprintf("command %q: %v", wk.command, err)
	}
	return spmesh.Errorf(code, "%s", msg)
}

// tailWriter passes what is written on to w and keeps its last max bytes.
type tailWriter struct {
	w   io.Writer
	max int
	buf []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	if t.w != nil {
		t.w.Write(p) // best effort: the command goes on when work's stderr is gone
	}
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return len(p), nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return len(p), nil
}

// lastLine returns the last non-empty line kept, cut to at most n bytes
// (on a UTF-8 boundary).
func (t *tailWriter) lastLine(n int) string {
	s := strings.TrimRight(string(t.buf), "\r\n\t ")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}
