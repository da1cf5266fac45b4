package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
)

// ErrDeadLetter is wrapped by the error of a job that ran out of attempts
// and went to the dead letter ([WithDeadLetter]). The error also wraps the
// last attempt's failure (a [*spmesh.RemoteError] for a nack,
// [spmesh.ErrTimeout] for an ack timeout or a lost worker).
var ErrDeadLetter = errors.New("spmesh: job dead-lettered")

// ErrUnacked is wrapped by the error [Producer.Close] returns when jobs were
// still unacked; errors.As gives the [*UnackedError] listing them.
var ErrUnacked = errors.New("spmesh: jobs not acked")

// JobIDOf returns a stable job id derived from key (its SHA-256,
// truncated): the same key always gives the same id, so a job produced
// again (after a producer restart, say) is recognised as a duplicate by a
// worker that acked it within its de-duplication window ([WithDedup]). A
// job's id stays the same across every delivery of the job.
func JobIDOf(key string) spmesh.ID {
	sum := sha256.Sum256([]byte(key))
	return spmesh.ID(sum[:16])
}

// Task is a job with every detail under the caller's control, for
// [Producer.Submit].
type Task struct {
	// ID identifies the job; zero picks a fresh one.
	ID spmesh.ID
	// Header travels with the job to the worker.
	Header spmesh.Header
	// Body is the job, encoded with the codec when submitted.
	Body any
}

// DeadLetter is a job that ran out of attempts, as the dead-letter function
// ([WithDeadLetter]) sees it. It stays valid after the function returns.
type DeadLetter struct {
	ID       spmesh.ID
	Header   spmesh.Header
	Data     []byte // the encoded job; Decode turns it into a value
	Attempts int    // deliveries made
	Err      error  // why the last one failed

	codec spmesh.Codec
}

// Decode decodes the job into v (a pointer) with the producer's codec.
func (d *DeadLetter) Decode(v any) error {
	if d == nil {
		return sock.NoValue("DeadLetter")
	}
	return sock.DecodeBody(d.codec, d.Data, v, "DeadLetter")
}

// Result is the future of one job produced with [Producer.ProduceAsync] or
// [Producer.Submit]. Its methods are safe for concurrent use.
type Result struct {
	id     spmesh.ID
	header spmesh.Header
	data   []byte
	ctx    context.Context // the job's: it bounds every delivery

	done     chan struct{}
	err      error
	attempts int

	seq     uint64      // its place in the outbox; 0: none
	attempt int         // the first delivery's attempt number (recovered: > 1)
	end     func(error) // ends the job's span (with a tracer); nil: none
}

// ID returns the job's id.
func (r *Result) ID() spmesh.ID { return r.id }

// Done returns a channel closed when the job is over: acked, dead-lettered,
// or failed (its ctx ended, the producer closed, no worker to send to).
func (r *Result) Done() <-chan struct{} { return r.done }

// Err returns nil while the job is in flight (like context.Context.Err);
// once Done is closed, nil means acked, and an error says why the job was
// not: wrapping [ErrDeadLetter], [spmesh.ErrClosed], [spmesh.ErrNoPeers],
// or the job's ctx error.
func (r *Result) Err() error {
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

// Attempts returns the number of deliveries made, once Done is closed.
func (r *Result) Attempts() int {
	select {
	case <-r.done:
		return r.attempts
	default:
		return 0
	}
}

// Wait waits until the job is over and returns [Result.Err], or returns
// ctx.Err() when ctx ends first (the job goes on).
func (r *Result) Wait(ctx context.Context) error {
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Result) finish(attempts int, err error) {
	r.attempts, r.err = attempts, err
	r.data, r.header, r.ctx = nil, nil, nil
	close(r.done)
}

// ProducerStats are a producer's counters. The embedded Stats are its
// socket's: Sent counts deliveries (attempts), Received acks and nacks,
// Resent the deliveries after the first (after a nack, an ack timeout or a
// lost worker), Peers the workers connected.
type ProducerStats struct {
	spmesh.Stats
	// Produced counts jobs accepted (by Produce, ProduceAsync or Submit).
	Produced uint64
	// Acked counts jobs acked by a worker.
	Acked uint64
	// RemoteErrors counts deliveries a worker's handler failed (nacks).
	RemoteErrors uint64
	// Timeouts counts deliveries not acked within the ack timeout.
	Timeouts uint64
	// Lost counts deliveries whose worker connection dropped.
	Lost uint64
	// DeadLettered counts jobs that ran out of attempts.
	DeadLettered uint64
	// Failed counts jobs that ended otherwise unacked: ctx ended, closed,
	// no worker.
	Failed uint64
	// InFlight is the number of jobs sent and not over (the window in use).
	InFlight int
	// PerPeer are the dispatch counters of each connected worker.
	PerPeer []spmesh.PeerStats
	// ReplyTime is the distribution of the times from sending a delivery
	// to its ack or nack, over every worker.
	ReplyTime spmesh.Histogram
	// Recovered counts the jobs found in the outbox ([WithOutbox]) at
	// open and sent again.
	Recovered uint64
}

// Producer sends jobs to connected [Worker]s and makes sure each is acked:
// a job is delivered again when its worker fails it (nack), does not ack it
// within the ack timeout, or goes away; after [WithMaxAttempts] deliveries
// it goes to the dead letter. Delivery is at least once: a job can run more
// than once. Up to [WithMaxInFlight] jobs are in flight at once, each sent
// to the worker with the fewest jobs in flight among those below their
// credit (ties round robin), a redelivery to another worker when one has
// room. A Producer is safe for concurrent use.
type Producer struct {
	so      *sock.Socket
	c       *sock.Caller // sends, resends, credits: shared with reqrep's Requester
	codec   spmesh.Codec
	maxSize int
	log     *slog.Logger
	cfg     producerConfig

	slots chan struct{} // the window: one token per job in flight
	work  chan *Result  // jobs handed to an idle sender

	mu      sync.Mutex // guards spawning senders against Close
	spawned int
	senders sync.WaitGroup

	done      chan struct{} // closed by Close
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	draining  atomic.Bool
	drained   chan struct{} // closed once draining with nothing in flight
	drainOnce sync.Once

	unackedMu sync.Mutex
	unacked   []spmesh.ID // jobs ended by Close

	idPrefix uint64
	idSeq    atomic.Uint64
	lastSize atomic.Int64 // size of the last job encoded

	ob         *outbox       // nil: no outbox
	recovering chan struct{} // closed once recovered jobs are in flight
	recoverWG  sync.WaitGroup
	recovered  uint64

	produced, acked, remoteErrors, retries, dead, failed atomic.Uint64
	tooLarge                                             atomic.Uint64 // refused before sending
}

// NewProducer opens a producer. Give it workers with [WithDial] (or
// [Producer.Dial] later), or a registry with [WithDiscovery]; it may also
// listen for workers that dial it ([WithListen], [Producer.Listen]).
func NewProducer(opts ...Option) (*Producer, error) {
	c, err := newConfig(forProducer, opts)
	if err != nil {
		return nil, err
	}
	var ob *outbox
	var recs []*record
	if c.producer.outbox != "" {
		if ob, recs, err = openOutbox(c.producer.outbox, c.producer.outboxJobs, c.producer.outboxBytes, c.producer.outboxFailFast, c.producer.outboxSync, c.sock.Logger); err != nil {
			return nil, err
		}
	}
	so, err := sock.Open(sock.Dispatcher, c.sock, sock.Wiring{Watch: spmesh.RoleWorker})
	if err != nil {
		if ob != nil {
			ob.close()
		}
		return nil, err
	}
	cc := sock.CallerConfig{
		Frames:         sock.JobFrames,
		AttemptTimeout: c.producer.ackTimeout,
		MaxAttempts:    c.producer.maxAttempts,
		Wait:           c.producer.wait || c.producer.outbox != "",
		PeerCredit:     2 * DefaultConcurrency, // until a worker announces its own
	}
	p := &Producer{
		so: so, c: sock.NewCaller(so, cc),
		codec: c.sock.Codec, maxSize: c.sock.MaxMsgSize, log: c.sock.Logger, cfg: c.producer,
		slots:    make(chan struct{}, c.producer.maxInFlight),
		work:     make(chan *Result),
		done:     make(chan struct{}),
		drained:  make(chan struct{}),
		idPrefix: sock.RandomUint64(),
	}
	if ob != nil {
		p.startOutbox(ob, recs)
	}
	return p, nil
}

// Listen listens on addr for workers to dial, returning the bound address.
func (p *Producer) Listen(addr string) (string, error) { return p.so.Listen(addr) }

// Addrs returns the addresses the producer listens on.
func (p *Producer) Addrs() []string { return p.so.Bound() }

// Dial connects to a worker listening at addr, in the background.
func (p *Producer) Dial(addr string) error { return p.so.Dial(addr) }

// Produce sends v as a job (with a fresh id) and waits until a worker acks
// it. It blocks while the window ([WithMaxInFlight]) is full. It fails at
// once with an error wrapping [spmesh.ErrNoPeers] when no worker is
// connected (unless [WithWaitForWorker]), with one wrapping [ErrDeadLetter]
// when the job ran out of attempts, and with ctx.Err() when ctx ends first;
// ctx bounds every delivery, and its deadline travels to the worker.
func (p *Producer) Produce(ctx context.Context, v any) error {
	return p.ProduceHeader(ctx, nil, v)
}

// ProduceHeader is [Producer.Produce] with headers that travel with the
// job to the worker ([Job.Header]), as PushHeader, PublishHeader,
// RequestHeader and SurveyHeader take theirs. [Producer.Submit] with a
// [Task] is the form that also sets the job's id, without waiting for
// the ack.
func (p *Producer) ProduceHeader(ctx context.Context, h spmesh.Header, v any) error {
	r, err := p.Submit(ctx, Task{Header: h, Body: v})
	if err != nil {
		return err
	}
	return r.Wait(ctx)
}

// ProduceAsync sends v as a job (with a fresh id) and returns its future
// once the job is in flight; it blocks only while the window
// ([WithMaxInFlight]) is full, so one goroutine keeps many workers busy.
// ctx bounds the wait for room and then the job itself (every delivery):
// cancelling it abandons the job, whose Result then fails with ctx's error.
// Errors returned here (no worker, encoding, window wait cut short, closed)
// mean the job was not sent.
func (p *Producer) ProduceAsync(ctx context.Context, v any) (*Result, error) {
	return p.Submit(ctx, Task{Body: v})
}

// Submit is [Producer.ProduceAsync] with the job's id and headers under the
// caller's control: [Task] is the form that sets the id ([Producer.ProduceHeader]
// sets headers alone). Giving a stable id ([JobIDOf]) lets workers
// recognise a job produced again. The Task's Header must not be changed
// until the job is over.
func (p *Producer) Submit(ctx context.Context, t Task) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p.closed.Load() || p.draining.Load() {
		return nil, spmesh.ErrClosed
	}
	if n := sock.KnownSize(p.codec, t.Body); n > p.maxSize {
		// Refused before encoding: a []byte or string never shrinks.
		p.tooLarge.Add(1)
		return nil, fmt.Errorf("%w: job of at least %d bytes, limit %d", spmesh.ErrTooLarge, n, p.maxSize)
	}
	data, err := spmesh.AppendMarshalLimit(p.codec, make([]byte, 0, min(p.bodyHint(t.Body), p.maxSize+1)), t.Body, p.maxSize)
	if errors.Is(err, spmesh.ErrTooLarge) {
		p.tooLarge.Add(1)
		return nil, fmt.Errorf("spmesh: job: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("spmesh: encode %T: %w", t.Body, err)
	}
	if data == nil {
		data = []byte{} // nil would mean "no pre-encoded body" to the Caller
	}
	if len(data) > p.maxSize {
		p.tooLarge.Add(1)
		return nil, fmt.Errorf("%w: job of %d bytes, limit %d", spmesh.ErrTooLarge, len(data), p.maxSize)
	}
	p.lastSize.Store(int64(len(data)))
	if !p.cfg.wait && p.so.Peers() == 0 {
		return nil, sock.NoPeersError("no worker connected", p.so.C.LastError())
	}
	if p.ob != nil {
		if err := p.waitRecovered(ctx); err != nil {
			return nil, err
		}
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.done:
		return nil, spmesh.ErrClosed
	}
	if p.draining.Load() {
		p.release()
		return nil, spmesh.ErrClosed
	}
	id := t.ID
	if id.IsZero() {
		id = p.newID()
	}
	r := &Result{id: id, header: t.Header, data: data, ctx: ctx, done: make(chan struct{})}
	p.trace(r)
	if p.ob != nil {
		if err := p.store(ctx, r); err != nil { // durable before accepted
			p.release()
			r.traced(err)
			return nil, err
		}
	}
	if err := p.dispatch(r); err != nil {
		p.release()
		r.traced(err)
		return nil, err
	}
	p.produced.Add(1)
	return r, nil
}

// trace starts r's span when the producer has a tracer: one per job, from
// here to its ack, dead letter or failure (nacks and redeliveries
// included); r's header becomes the tracer's, with the span's trace
// context, sent with every delivery and stored in the outbox, so that a
// job recovered after a restart gives it to the tracer again.
func (p *Producer) trace(r *Result) {
	if !p.so.Settings.Traced() {
		return
	}
	r.ctx, r.header, r.end = p.so.Settings.TraceSend(r.ctx, spmesh.TraceJob, p.so.Settings.Service, r.header)
}

// traced ends r's span, if any, with the job's outcome.
func (r *Result) traced(err error) {
	if r.end != nil {
		r.end(err)
		r.end = nil
	}
}

// bodyHint guesses the encoded size of v, so that it is encoded into one
// allocation: from its length for bytes and strings, else from the last job.
func (p *Producer) bodyHint(v any) int {
	switch b := v.(type) {
	case []byte:
		return len(b) + 5 // msgpack bin header
	case string:
		return len(b) + 5
	}
	return int(p.lastSize.Load()) + 16
}

// newID returns a fresh job id: the producer's random prefix, then a
// counter.
func (p *Producer) newID() spmesh.ID {
	var id spmesh.ID
	binary.BigEndian.PutUint64(id[:8], p.idPrefix)
	binary.BigEndian.PutUint64(id[8:], p.idSeq.Add(1))
	return id
}

// dispatch hands r to an idle sender, or starts one while fewer than the
// window's size exist: senders are long-lived, one per job in flight at
// most, never one per job.
func (p *Producer) dispatch(r *Result) error {
	select {
	case p.work <- r:
		return nil
	default:
	}
	p.mu.Lock()
	if p.closed.Load() {
		p.mu.Unlock()
		return spmesh.ErrClosed
	}
	if p.spawned < cap(p.slots) {
		p.spawned++
		p.senders.Add(1)
		p.mu.Unlock()
		go p.sender(r)
		return nil
	}
	p.mu.Unlock()
	// Every sender exists and r holds a slot, so one is between jobs and
	// takes r as soon as it is back.
	select {
	case p.work <- r:
		return nil
	case <-p.done:
		return spmesh.ErrClosed
	}
}

func (p *Producer) sender(r *Result) {
	defer p.senders.Done()
	for {
		attempts, err := p.deliver(r)
		if r.seq != 0 {
			p.settle(r, err)
		}
		p.release() // first, so a caller woken by the result finds room
		r.traced(err)
		r.finish(attempts, err)
		select {
		case r = <-p.work:
		case <-p.done:
			return
		}
	}
}

// release frees r's slot; the last one out of a draining producer says so.
func (p *Producer) release() {
	<-p.slots
	if p.draining.Load() && len(p.slots) == 0 {
		p.drainOnce.Do(func() { close(p.drained) })
	}
}

// deliver sends r until it is acked, runs out of attempts, or fails. The
// Caller resends it after an ack timeout or a lost connection; after a
// nack the job is sent again as the next attempt, with the same id, to
// another worker when one has room.
func (p *Producer) deliver(r *Result) (int, error) {
	// A job recovered from the outbox goes on from its stored attempt
	// number, with a full budget of deliveries in this run.
	maxAttempts := p.cfg.maxAttempts + max(1, r.attempt) - 1
	call := sock.Call{
		ID: wire.ID(r.id), Header: r.header, Data: r.data,
		Attempt: max(1, r.attempt), MaxAttempts: maxAttempts, AttemptTimeout: p.cfg.ackTimeout,
	}
	if call.AttemptTimeout == 0 {
		call.AttemptTimeout = -1 // no timer (0 would mean the Caller's default)
	}
	var env wire.Msg
	for {
		m, attempt, pipe, err := p.c.Do(r.ctx, &call, &env)
		if err == nil {
			if !sock.JobFrames.Failed(&env) {
				m.Free()
				p.acked.Add(1)
				return attempt, nil
			}
			err = p.c.RemoteErr(r.ctx, &env)
			m.Free()
			var re *spmesh.RemoteError
			switch {
			case errors.As(err, &re) && re.Code == spmesh.CodeTooLarge:
				// The worker refused the job for its size (or its ack was
				// too large for this producer): another delivery cannot
				// fare better. Dead-lettered at once; the error wraps
				// ErrTooLarge.
				p.remoteErrors.Add(1)
				return attempt, p.deadLetter(r, attempt, err)
			case errors.As(err, &re):
				p.remoteErrors.Add(1)
				if attempt < maxAttempts {
					p.log.Debug("spmesh: job nacked, redelivering", "id", r.id, "attempt", attempt, "err", err)
					call.Attempt, call.Avoid = attempt+1, pipe
					p.retries.Add(1)
					continue
				}
				return attempt, p.deadLetter(r, attempt, err)
			}
			// The job's ctx ended (its deadline made the worker fail it).
		}
		switch {
		case errors.Is(err, spmesh.ErrDecode) && r.ctx.Err() == nil:
			// Not an ack (a confused or hostile peer): the job's fate is
			// unknown, so it goes out again like a nacked one.
			if attempt < maxAttempts {
				call.Attempt, call.Avoid = attempt+1, pipe
				p.retries.Add(1)
				continue
			}
			return attempt, p.deadLetter(r, attempt, err)
		case errors.Is(err, spmesh.ErrTimeout) && r.ctx.Err() == nil:
			// The last attempt timed out or lost its worker.
			return attempt, p.deadLetter(r, attempt, err)
		default:
			p.failed.Add(1)
			if errors.Is(err, spmesh.ErrClosed) {
				p.unackedMu.Lock()
				p.unacked = append(p.unacked, r.id)
				p.unackedMu.Unlock()
			}
			return attempt, err
		}
	}
}

// deadLetter hands r to the dead-letter function (or the log) and returns
// the job's error.
func (p *Producer) deadLetter(r *Result, attempts int, cause error) error {
	p.dead.Add(1)
	dl := &DeadLetter{ID: r.id, Header: r.header, Data: r.data, Attempts: attempts, Err: cause, codec: p.codec}
	if f := p.cfg.deadLetter; f != nil {
		func() {
			defer func() {
				if v := recover(); v != nil {
					p.log.Error("spmesh: dead-letter function panicked", "id", r.id, "panic", v)
				}
			}()
			f(dl)
		}()
	} else {
		p.log.Error("spmesh: job dead-lettered", "id", r.id, "attempts", attempts, "err", cause)
	}
	return fmt.Errorf("%w: job %s after %d attempts: %w", ErrDeadLetter, r.id, attempts, cause)
}

// Stats returns the producer's counters.
func (p *Producer) Stats() ProducerStats {
	d := p.c.Dispatch()
	st := ProducerStats{
		Stats:        p.so.Stats(),
		Produced:     p.produced.Load(),
		Acked:        p.acked.Load(),
		RemoteErrors: p.remoteErrors.Load(),
		Timeouts:     p.c.Timeouts.Load(),
		Lost:         p.c.Lost.Load(),
		DeadLettered: p.dead.Load(),
		Failed:       p.failed.Load(),
		InFlight:     len(p.slots),
		PerPeer:      d.Peers(),
		ReplyTime:    d.ReplyTime(),
		Recovered:    p.recovered,
	}
	st.Resent += p.retries.Load()
	st.TooLarge += p.tooLarge.Load()
	st.Draining = p.draining.Load() // its requester drains only as it closes
	return st
}

// Drain stops taking jobs (Produce and ProduceAsync then fail with
// [spmesh.ErrClosed]), waits until every job in flight is over (acked,
// dead-lettered or failed), then closes the producer. If ctx ends first it
// closes at once, returning ctx.Err() joined with Close's report of the
// jobs left unacked.
func (p *Producer) Drain(ctx context.Context) error {
	if p.closed.Load() {
		return spmesh.ErrClosed
	}
	if p.ob != nil { // recovered jobs count as in flight
		if err := p.waitRecovered(ctx); err != nil {
			return errors.Join(err, p.Close())
		}
	}
	p.draining.Store(true)
	if len(p.slots) == 0 {
		p.drainOnce.Do(func() { close(p.drained) })
	}
	select {
	case <-p.drained:
		return p.Close()
	case <-ctx.Done():
		return errors.Join(ctx.Err(), p.Close())
	}
}

// Close closes the producer at once. Jobs in flight are abandoned: their
// Produce calls and Results fail with [spmesh.ErrClosed] (a worker may
// still be running them). Close reports them: it returns an
// [*UnackedError] (wrapping [ErrUnacked]) listing their ids when there were
// any, else nil. It is idempotent; later calls return nil.
func (p *Producer) Close() error {
	first := false
	p.closeOnce.Do(func() {
		first = true
		p.mu.Lock()
		p.closed.Store(true) // no sender starts after this
		p.mu.Unlock()
		close(p.done)
		err := p.so.Close() // every delivery in progress returns ErrClosed
		p.senders.Wait()
		if p.ob != nil {
			p.recoverWG.Wait()
			err = errors.Join(err, p.ob.close())
		}
		p.unackedMu.Lock()
		ids := p.unacked
		p.unackedMu.Unlock()
		if len(ids) > 0 {
			err = errors.Join(err, &UnackedError{IDs: ids})
		}
		p.closeErr = err
	})
	if !first {
		return nil
	}
	return p.closeErr
}

// UnackedError lists the jobs a [Producer] abandoned when it closed.
type UnackedError struct {
	IDs []spmesh.ID
}

// Error implements error.
func (e *UnackedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "spmesh: producer closed with %d jobs not acked", len(e.IDs))
	for i, id := range e.IDs {
		if i == 8 {
			fmt.Fprintf(&b, ", ... (%d more)", len(e.IDs)-i)
			break
		}
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		b.WriteString(sep + id.String())
	}
	return b.String()
}

// Unwrap returns [ErrUnacked].
func (e *UnackedError) Unwrap() error { return ErrUnacked }
