package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
)

// Job is one delivery of a job, as a [Handler] sees it. It and its Data are
// valid only until the handler returns: copy what must outlive it.
type Job struct {
	// ID identifies the job; every delivery of it carries the same ID.
	ID spmesh.ID
	// Attempt numbers the delivery, from 1. Above 1, an earlier delivery
	// failed, timed out or was lost, and may have run (here or elsewhere).
	// A job whose producer sent no attempt (a foreign one) is attempt 1.
	Attempt int
	// Header holds the producer's headers (nil when it sent none).
	Header spmesh.Header
	// Time is when the producer sent this delivery, by its clock.
	Time time.Time
	// Deadline is the job's deadline, from the producer's ctx (zero when it
	// has none). The handler's ctx ends at the same instant.
	Deadline time.Time
	// Data is the encoded job; Decode turns it into a value.
	Data []byte

	codec spmesh.Codec
}

// Decode decodes the job into v (a pointer) with the worker's codec.
func (j *Job) Decode(v any) error {
	if j == nil {
		return sock.NoValue("Job")
	}
	return sock.DecodeBody(j.codec, j.Data, v, "Job")
}

// Handler runs jobs for a [Worker]. ServeJob returning nil acks the job;
// an error (or a panic, recovered and logged) nacks it, and the producer
// delivers it again, to this or another worker, until it runs out of
// attempts. The error's text and code ([spmesh.Errorf]) reach the producer
// as a [*spmesh.RemoteError].
//
// ctx ends at the job's deadline, when the worker closes, or when Drain
// runs out of time. Delivery is at least once: use [Job.ID] (and
// [WithDedup]) when running a job twice does harm.
type Handler interface {
	ServeJob(ctx context.Context, job *Job) error
}

// HandlerFunc adapts a function to a [Handler].
type HandlerFunc func(ctx context.Context, job *Job) error

// ServeJob calls f.
func (f HandlerFunc) ServeJob(ctx context.Context, job *Job) error { return f(ctx, job) }

// TypedHandler adapts a function taking the decoded job to a [Handler]. A
// job that does not decode as a T is nacked with an error wrapping
// [spmesh.ErrDecode] without calling f (so it ends in the dead letter).
// TypedHandler(nil) is nil, which [NewWorker] refuses.
func TypedHandler[T any](f func(ctx context.Context, job *Job, v T) error) Handler {
	if f == nil {
		return nil // refused by the constructor
	}
	return HandlerFunc(func(ctx context.Context, job *Job) error {
		var v T
		if err := job.Decode(&v); err != nil {
			return err
		}
		return f(ctx, job, v)
	})
}

// WorkerStats are a worker's counters. The embedded Stats are its socket's:
// Received counts deliveries taken (duplicates included), Sent the acks and
// nacks, DecodeErrors the frames that were not jobs (each nacked), Dropped
// the deliveries not handed to the handler (oversized, expired on arrival,
// or caught by Drain: all delivered again by their producers).
type WorkerStats struct {
	spmesh.Stats
	// InFlight is the number of handlers running.
	InFlight int
	// Acked counts jobs whose handler returned nil (duplicates excluded).
	Acked uint64
	// HandlerErrors counts jobs whose handler failed or panicked (nacked).
	HandlerErrors uint64
	// Duplicates counts deliveries acked from the de-duplication window
	// ([WithDedup]) without running the handler.
	Duplicates uint64
	// Panics counts recovered handler panics.
	Panics uint64
	// Abandoned counts handlers still running when Close stopped waiting
	// for them (they ignored their ctx for [HandlerGrace]).
	Abandoned uint64
}

// HandlerGrace is how long Close waits for running handlers to return once
// their ctx is cancelled. A handler still running then goes on in the
// background (its ack is never sent, so the job is delivered again); it is
// logged and counted in [WorkerStats].Abandoned.
const HandlerGrace = sock.HandlerGrace

// Worker runs the jobs that connected [Producer]s send it with a [Handler],
// up to [WithConcurrency] at once, and acks each one after the handler
// returns nil. Each ack announces the worker's credit and the jobs it is
// running (see the package documentation). A Worker is safe for concurrent
// use.
type Worker struct {
	so    *sock.Socket
	srv   *sock.Server // the serving side shared by reqrep's Replier
	h     Handler
	codec spmesh.Codec
	dd    *dedup // nil: no de-duplication

	acked, handlerErrors, dups atomic.Uint64
}

// NewWorker opens a worker running h. Give it an address with [WithListen]
// (or [Worker.Listen] later), or a registry with [WithDiscovery] (it then
// listens on the registry's host and advertises itself); it may also dial
// producers that listen ([WithDial], [Worker.Dial]).
// A nil h (also a nil HandlerFunc) is refused with an error wrapping
// [spmesh.ErrInvalidOption].
func NewWorker(h Handler, opts ...Option) (*Worker, error) {
	if sock.NilFunc(h) {
		return nil, sock.Invalid("nil handler")
	}
	c, err := newConfig(forWorker, opts)
	if err != nil {
		return nil, err
	}
	w := &Worker{h: h, codec: c.sock.Codec}
	if c.worker.dedupSize > 0 {
		w.dd = newDedup(c.worker.dedupSize, c.worker.dedupTTL)
	}
	so, err := sock.Open(sock.Rep, c.sock, sock.Wiring{Bind: spmesh.RoleWorker})
	if err != nil {
		return nil, err
	}
	w.so = so
	if w.srv, err = sock.NewServer(so, c.worker.concurrency, w.handle); err != nil {
		so.Close()
		return nil, err
	}
	credit := c.worker.credit
	if credit == 0 {
		credit = min(2*c.worker.concurrency, 1<<16)
	}
	w.srv.Credit = uint32(credit)
	w.srv.ReportLoad = true
	w.srv.Start()
	return w, nil
}

// handle answers one frame: a job is acked (or nacked) once served.
func (w *Worker) handle(base context.Context, m *sock.Frame) *sock.Frame {
	return w.srv.ServeEnvelope(base, m, sock.JobFrames, w.serve)
}

var jobPool = sync.Pool{New: func() any { return new(Job) }}

// serve runs one delivery of a job. The ack is the reply, sent by the
// server after serve returns nil; an error reply is the nack.
func (w *Worker) serve(ctx context.Context, env wire.Msg) (any, spmesh.Header, error) {
	job := jobPool.Get().(*Job)
	*job = Job{
		ID: spmesh.ID(env.ID), Attempt: max(1, int(env.Attempt)), Header: env.Header,
		Time: time.Unix(0, env.Time), Data: env.Body, codec: w.codec,
	}
	if env.Deadline != 0 {
		job.Deadline = time.Unix(0, env.Deadline)
	}
	defer func() { // the handler may not keep job: it is reused
		*job = Job{}
		jobPool.Put(job)
	}()
	// A job without an id (all zero bytes, as a foreign producer that does
	// not set key 1 sends) is never de-duplicated: zero ids are not one id.
	dd := w.dd
	if job.ID == (spmesh.ID{}) {
		dd = nil
	}
	if dd != nil {
		dup, err := dd.begin(ctx, job.ID)
		if err != nil {
			return nil, nil, err
		}
		if dup {
			w.dups.Add(1)
			return nil, nil, nil
		}
	}
	ok := false
	defer func() { // also on a panic, which the server recovers
		if dd != nil {
			dd.end(job.ID, ok)
		}
		if ok {
			w.acked.Add(1)
		} else {
			w.handlerErrors.Add(1)
		}
	}()
	if err := w.h.ServeJob(ctx, job); err != nil {
		return nil, nil, err
	}
	ok = true
	return nil, nil, nil
}

// Listen listens on addr for producers to dial, returning the bound address
// (port 0 resolved).
func (w *Worker) Listen(addr string) (string, error) { return w.so.Listen(addr) }

// Dial connects to a producer listening at addr, in the background.
func (w *Worker) Dial(addr string) error { return w.so.Dial(addr) }

// Addrs returns the addresses the worker listens on.
func (w *Worker) Addrs() []string { return w.so.Bound() }

// Stats returns the worker's counters.
func (w *Worker) Stats() WorkerStats {
	return WorkerStats{
		Stats:         w.so.Stats(),
		InFlight:      int(w.srv.InFlight.Load()),
		Acked:         w.acked.Load(),
		HandlerErrors: w.handlerErrors.Load(),
		Duplicates:    w.dups.Load(),
		Panics:        w.srv.Panics.Load(),
		Abandoned:     w.srv.Abandoned.Load(),
	}
}

// Drain stops taking jobs, lets the running handlers finish and ack, then
// closes the worker. Jobs that reached it but were not taken are delivered
// again by their producers when the connections close. If ctx ends first,
// Drain closes at once (running handlers see their ctx cancelled, their
// jobs are delivered again) and returns ctx.Err().
func (w *Worker) Drain(ctx context.Context) error { return w.srv.Drain(ctx) }

// Close closes the worker at once: running handlers see their ctx
// cancelled and their acks are not sent, so their producers deliver the
// jobs again elsewhere. Close returns once the handlers have returned, or
// after [HandlerGrace] if some ignore their ctx (they go on running; see
// [WorkerStats].Abandoned). It is idempotent.
func (w *Worker) Close() error { return w.srv.Close() }

// dedup is a worker's de-duplication window: the ids of the jobs acked
// lately (a ring of size entries, each good for ttl) and of those running.
type dedup struct {
	size int
	ttl  time.Duration

	mu      sync.Mutex
	acked   map[spmesh.ID]int // id -> index in ring
	ring    []dedupEntry
	next    int
	running map[spmesh.ID]*dedupRun
}

type dedupEntry struct {
	id spmesh.ID
	at time.Time
}

type dedupRun struct {
	done chan struct{}
	ok   bool
}

func newDedup(size int, ttl time.Duration) *dedup {
	// The ring grows to size as jobs are acked, then wraps around.
	return &dedup{
		size: size, ttl: ttl,
		acked:   make(map[spmesh.ID]int, min(size, 1<<12)),
		running: map[spmesh.ID]*dedupRun{},
	}
}

// begin reports whether id was acked lately. If another delivery of id is
// running, it waits for that one: its ack makes this one a duplicate, its
// failure lets this one run. Otherwise id is marked running, and the
// caller must call end.
func (d *dedup) begin(ctx context.Context, id spmesh.ID) (dup bool, err error) {
	for {
		d.mu.Lock()
		if i, ok := d.acked[id]; ok {
			if d.ttl == 0 || time.Since(d.ring[i].at) < d.ttl {
				d.mu.Unlock()
				return true, nil
			}
			delete(d.acked, id)
		}
		run, ok := d.running[id]
		if !ok {
			d.running[id] = &dedupRun{done: make(chan struct{})}
			d.mu.Unlock()
			return false, nil
		}
		d.mu.Unlock()
		select {
		case <-run.done:
			if run.ok {
				return true, nil
			}
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// end records the outcome of the delivery of id that begin let run.
func (d *dedup) end(id spmesh.ID, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	run := d.running[id]
	delete(d.running, id)
	run.ok = ok
	close(run.done)
	if !ok {
		return
	}
	e := dedupEntry{id: id, at: time.Now()}
	if len(d.ring) < d.size {
		d.acked[id] = len(d.ring)
		d.ring = append(d.ring, e)
		return
	}
	old := d.ring[d.next]
	if i, ok := d.acked[old.id]; ok && i == d.next {
		delete(d.acked, old.id)
	}
	d.ring[d.next] = e
	d.acked[id] = d.next
	d.next = (d.next + 1) % len(d.ring)
}
