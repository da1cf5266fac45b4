package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/vmihailenco/msgpack/v5"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrOutboxFull is wrapped by the error of a Submit that found the outbox
// at its limit ([WithOutboxLimit]) with [WithOutboxFailFast] set; without
// it, Submit waits for room until its ctx ends.
var ErrOutboxFull = errors.New("spmesh: outbox full")

// ErrOutbox is wrapped by the error of a [NewProducer] whose outbox
// ([WithOutbox]) cannot be opened: locked by another producer, corrupt, or
// not a bbolt file.
var ErrOutbox = errors.New("spmesh: outbox")

// Defaults of the outbox ([WithOutbox], [WithOutboxLimit]).
const (
	DefaultOutboxJobs  = 100_000
	DefaultOutboxBytes = 256 << 20
	// outboxLockTimeout is how long NewProducer waits for the outbox's
	// file lock before refusing it as held by another producer.
	outboxLockTimeout = 500 * time.Millisecond
	// outboxBatch bounds the writes one commit (one fsync) carries.
	outboxBatch = 1024
	// outboxDeleteLinger is how long acked jobs' deletes wait for a
	// commit of new jobs to ride on before they get one of their own
	// (which would cost an fsync serving no Submit); outboxBatch of them
	// get one at once.
	outboxDeleteLinger = 20 * time.Millisecond
)

// Bounds of the outbox's fsync interval ([WithOutboxSync]).
const (
	MinOutboxSync = time.Millisecond
	MaxOutboxSync = time.Hour
)

var outboxBucket = []byte("jobs")

// record is one job in the outbox, as stored (the key is its sequence
// number, big endian, so that recovery resends in submit order).
type record struct {
	seq     uint64
	id      spmesh.ID
	attempt int // the attempt the next delivery makes
	header  spmesh.Header
	data    []byte
}

// size is what the record counts against the byte limit.
func (r *record) size() int64 { return int64(len(r.data)) + 64 }

// Layout of a value: id (16) | attempt (4) | header length (4) | header
// (msgpack) | data.
func (r *record) marshal() ([]byte, error) {
	var hdr []byte
	if len(r.header) > 0 {
		var err error
		if hdr, err = msgpack.Marshal(map[string]string(r.header)); err != nil {
			return nil, err
		}
	}
	b := make([]byte, 24, 24+len(hdr)+len(r.data))
	copy(b, r.id[:])
	binary.BigEndian.PutUint32(b[16:], uint32(r.attempt))
	binary.BigEndian.PutUint32(b[20:], uint32(len(hdr)))
	b = append(b, hdr...)
	return append(b, r.data...), nil
}

func unmarshalRecord(k, v []byte) (*record, error) {
	if len(k) != 8 || len(v) < 24 {
		return nil, fmt.Errorf("record of %d/%d bytes, want 8/at least 24", len(k), len(v))
	}
	r := &record{seq: binary.BigEndian.Uint64(k), attempt: int(binary.BigEndian.Uint32(v[16:]))}
	copy(r.id[:], v)
	n := int(binary.BigEndian.Uint32(v[20:]))
	if n > len(v)-24 {
		return nil, fmt.Errorf("record %d: header of %d bytes, only %d left", r.seq, n, len(v)-24)
	}
	if n > 0 {
		var h map[string]string
		if err := msgpack.Unmarshal(v[24:24+n], &h); err != nil {
			return nil, fmt.Errorf("record %d: header: %w", r.seq, err)
		}
		r.header = h
	}
	r.data = append([]byte{}, v[24+n:]...) // v lives only as long as the tx
	return r, nil
}

// outbox is the durable store of a Producer's unacked jobs: a bbolt file
// written by one goroutine that commits every pending write in one
// transaction (one fsync), so concurrent submits share it.
type outbox struct {
	db       *bolt.DB
	path     string
	maxJobs  int
	maxBytes int64
	failFast bool
	syncEach time.Duration // 0: fsync in every commit; > 0: commits are not fsynced, the file is every syncEach
	log      *slog.Logger

	reqs chan *obReq
	kick chan struct{} // deletes are pending
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	jobs   int
	bytes  int64
	room   chan struct{} // closed and replaced when jobs leave, if waited on
	wait   bool          // a put waits on room
	nextSq uint64
	dels   []uint64 // acked jobs to delete in the next commit

	lastSyncErr error         // the fsync at stop (syncEach > 0), read after done
	syncs       atomic.Uint64 // periodic fsyncs done (syncEach > 0), for tests
}

type obReq struct {
	put  *record
	done chan error // buffered 1: the writer never waits on it
}

// obReqs recycles requests with their channels (two allocations a job).
var obReqs = sync.Pool{New: func() any { return &obReq{done: make(chan error, 1)} }}

// openOutbox opens (or creates) the outbox at path and reads the jobs it
// holds. A store locked by another producer, corrupt, or not bbolt gives
// an error wrapping ErrOutbox, never a panic.
func openOutbox(path string, maxJobs int, maxBytes int64, failFast bool, syncEach time.Duration, log *slog.Logger) (ob *outbox, recs []*record, err error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		if err := checkOutbox(path); err != nil {
			return nil, nil, err
		}
	}
	// Not NoFreelistSync (faster commits): without a freelist on disk,
	// bbolt rebuilds it at open in a goroutine of its own, where a damaged
	// page panics past any recover and kills the process.
	// NoSync (WithOutboxSync > 0): commits write the file and do not
	// fsync it; the writer fsyncs it every syncEach and at close.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: outboxLockTimeout, NoSync: syncEach > 0})
	if err != nil {
		return nil, nil, openError(path, err)
	}
	defer func() {
		if v := recover(); v != nil { // bbolt panics on some corrupt pages
			err = fmt.Errorf("%w %s: corrupt: %v", ErrOutbox, path, v)
		}
		if err != nil {
			db.Close()
			ob, recs = nil, nil
		}
	}()
	ob = &outbox{
		db: db, path: path, maxJobs: maxJobs, maxBytes: maxBytes, failFast: failFast, syncEach: syncEach, log: log,
		reqs: make(chan *obReq), kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		room: make(chan struct{}),
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(outboxBucket)
		if err != nil {
			return err
		}
		// Each recovered job's next delivery is a new attempt: its last
		// one may have reached a worker before the crash.
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			r, err := unmarshalRecord(k, v)
			if err != nil {
				return err
			}
			r.attempt++
			recs = append(recs, r)
			ob.jobs++
			ob.bytes += r.size()
		}
		for _, r := range recs {
			v, err := r.marshal()
			if err != nil {
				return err
			}
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], r.seq)
			if err := b.Put(k[:], v); err != nil {
				return err
			}
		}
		ob.nextSq = b.Sequence()
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%w %s: corrupt: %w", ErrOutbox, path, err)
	}
	if syncEach > 0 { // the raised attempt counts, at once
		if err := db.Sync(); err != nil {
			return nil, nil, fmt.Errorf("%w %s: fsync: %w", ErrOutbox, path, err)
		}
	}
	go ob.writer()
	return ob, recs, nil
}

func openError(path string, err error) error {
	if errors.Is(err, berrors.ErrTimeout) {
		return fmt.Errorf("%w %s: locked by another producer (file lock not free within %v): %w", ErrOutbox, path, outboxLockTimeout, err)
	}
	return fmt.Errorf("%w %s: cannot open (corrupt or not a bbolt file?): %w", ErrOutbox, path, err)
}

// checkOutbox opens an existing outbox read-only and checks every page
// (bbolt's consistency check), because bbolt panics on some damage when it
// opens a file for writing, leaving the file open and locked.
func checkOutbox(path string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w %s: corrupt: %v", ErrOutbox, path, v)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: outboxLockTimeout, ReadOnly: true})
	if err != nil {
		return openError(path, err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			if len(errs) < 4 {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%w %s: corrupt: %w", ErrOutbox, path, errors.Join(errs...))
		}
		return nil
	})
}

// put stores r durably (fsynced, or written to the file when syncEach > 0)
// before it returns nil. It waits for room
// under the limits until ctx or quit ends, or fails with ErrOutboxFull
// when fail-fast.
func (ob *outbox) put(ctx context.Context, quit <-chan struct{}, r *record) error {
	sz := r.size()
	if sz > ob.maxBytes {
		return fmt.Errorf("%w: job of %d bytes, outbox limit %d bytes", ErrOutboxFull, sz, ob.maxBytes)
	}
	for {
		ob.mu.Lock()
		if ob.jobs < ob.maxJobs && ob.bytes+sz <= ob.maxBytes {
			ob.jobs++
			ob.bytes += sz
			ob.nextSq++
			r.seq = ob.nextSq
			ob.mu.Unlock()
			break
		}
		ob.wait = true
		room := ob.room
		jobs, bytes := ob.jobs, ob.bytes
		ob.mu.Unlock()
		if ob.failFast {
			return fmt.Errorf("%w: %d jobs, %d bytes (limits %d, %d)", ErrOutboxFull, jobs, bytes, ob.maxJobs, ob.maxBytes)
		}
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		case <-quit:
			return spmesh.ErrClosed
		}
	}
	q := obReqs.Get().(*obReq)
	q.put = r
	var err error
	select {
	case ob.reqs <- q:
		err = <-q.done
	case <-ob.stop:
		err = spmesh.ErrClosed
	}
	q.put = nil
	obReqs.Put(q) // answered (or never sent): the writer is done with it
	if err != nil {
		ob.release(sz)
	}
	return err
}

// remove deletes the job stored as seq, in the next commit of new jobs
// or within outboxDeleteLinger; nobody waits for it (a delete lost in a crash means the job is sent again: a
// duplicate, which at least once allows).
func (ob *outbox) remove(seq uint64, sz int64) {
	ob.mu.Lock()
	ob.dels = append(ob.dels, seq)
	ob.mu.Unlock()
	select {
	case ob.kick <- struct{}{}:
	default:
	}
	ob.release(sz)
}

func (ob *outbox) release(sz int64) {
	ob.mu.Lock()
	ob.jobs--
	ob.bytes -= sz
	if ob.wait {
		ob.wait = false
		close(ob.room)
		ob.room = make(chan struct{})
	}
	ob.mu.Unlock()
}

// writer commits pending writes: it takes one, then every other already
// waiting (up to outboxBatch), and commits them in one transaction, so
// that one fsync serves every submit that arrived during the last. With
// syncEach > 0 it fsyncs the file every syncEach instead, when something
// was committed since the last, and when it stops.
func (ob *outbox) writer() {
	defer close(ob.done)
	batch := make([]*obReq, 0, outboxBatch)
	var dels []uint64
	var tick <-chan time.Time
	if ob.syncEach > 0 {
		t := time.NewTicker(ob.syncEach)
		defer t.Stop()
		tick = t.C
	}
	dirty := false // committed and not fsynced (syncEach > 0)
	// Deletes alone wait outboxDeleteLinger for new jobs to ride with.
	linger := time.NewTimer(outboxDeleteLinger)
	linger.Stop()
	defer linger.Stop()
	var lingered <-chan time.Time // armed: deletes are waiting
	for {
		batch = batch[:0]
		select {
		case q := <-ob.reqs:
			batch = append(batch, q)
		case <-ob.kick:
			ob.mu.Lock()
			n := len(ob.dels)
			ob.mu.Unlock()
			if n < outboxBatch {
				if lingered == nil {
					linger.Reset(outboxDeleteLinger)
					lingered = linger.C
				}
				continue
			}
		case <-lingered:
		case <-tick:
			if dirty {
				dirty = false
				ob.sync()
			}
			continue
		case <-ob.stop:
			ob.mu.Lock()
			dels, ob.dels = ob.dels, dels[:0]
			ob.mu.Unlock()
			if len(dels) > 0 {
				ob.commit(nil, dels)
				dirty = true
			}
			if dirty {
				ob.lastSyncErr = ob.sync()
			}
			return
		}
		// Once no put is waiting, yield once: submitters whose jobs the
		// last commit released are runnable, and their next jobs join this
		// commit rather than the next (measured: 28 to 41 jobs per fsync'd
		// commit with 64 submitters, 2.5 to 25 with periodic fsync).
		yielded := false
	more:
		for len(batch) < outboxBatch {
			select {
			case q := <-ob.reqs:
				batch = append(batch, q)
			default:
				if yielded {
					break more
				}
				yielded = true
				runtime.Gosched()
			}
		}
		ob.mu.Lock()
		dels, ob.dels = ob.dels, dels[:0]
		ob.mu.Unlock()
		if len(dels) > 0 && lingered != nil {
			linger.Stop()
			lingered = nil
		}
		if len(batch) == 0 && len(dels) == 0 {
			continue
		}
		err := ob.commit(batch, dels)
		dirty = dirty || ob.syncEach > 0
		if err != nil && len(dels) > 0 && ob.log != nil {
			// Nobody waits for a delete: say it. The jobs are sent
			// again by the next producer on the path (duplicates).
			ob.log.Error("spmesh: outbox: removing acked jobs failed", "path", ob.path, "jobs", len(dels), "err", err)
		}
		for _, q := range batch {
			if q.done != nil {
				q.done <- err
			}
		}
		clear(batch)
	}
}

func (ob *outbox) commit(batch []*obReq, dels []uint64) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w %s: write: %v", ErrOutbox, ob.path, v)
		}
	}()
	err = ob.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(outboxBucket)
		var k [8]byte
		var top uint64
		if len(dels) > 0 {
			c := b.Cursor() // one for every delete (Bucket.Delete makes one each)
			for _, seq := range dels {
				binary.BigEndian.PutUint64(k[:], seq)
				if got, _ := c.Seek(k[:]); got == nil || !bytes.Equal(got, k[:]) {
					continue // not there: nothing to delete
				}
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		for _, q := range batch {
			v, err := q.put.marshal()
			if err != nil {
				return err
			}
			binary.BigEndian.PutUint64(k[:], q.put.seq)
			if err := b.Put(k[:], v); err != nil {
				return err
			}
			top = max(top, q.put.seq)
		}
		if top > b.Sequence() {
			return b.SetSequence(top)
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("%w %s: write: %w", ErrOutbox, ob.path, err)
	}
	return err
}

// sync fsyncs the file (syncEach > 0). Nobody waits for it: a failure is
// logged; the jobs are accepted already, and a host crash before the next
// fsync that works can lose them.
func (ob *outbox) sync() error {
	ob.syncs.Add(1)
	err := ob.db.Sync()
	if err != nil {
		err = fmt.Errorf("%w %s: fsync: %w", ErrOutbox, ob.path, err)
		if ob.log != nil {
			ob.log.Error("spmesh: outbox: periodic fsync failed", "path", ob.path, "err", err)
		}
	}
	return err
}

// close commits what is pending, fsyncs it and closes the file.
func (ob *outbox) close() error {
	close(ob.stop)
	<-ob.done
	return errors.Join(ob.lastSyncErr, ob.db.Close())
}

// validOutboxPath checks the path's directory exists, for an error at
// construction rather than at the first job.
func validOutboxPath(path string) error {
	if path == "" {
		return errors.New("empty path")
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	return nil
}

// startOutbox puts the jobs recovered from ob in flight, in their order,
// before any new one (Submit waits for it).
func (p *Producer) startOutbox(ob *outbox, recs []*record) {
	p.ob = ob
	p.recovered = uint64(len(recs))
	p.recovering = make(chan struct{})
	if len(recs) > 0 {
		p.log.Info("spmesh: producer recovered unacked jobs from its outbox", "path", ob.path, "jobs", len(recs))
	}
	p.recoverWG.Add(1)
	go func() {
		defer p.recoverWG.Done()
		defer close(p.recovering)
		for _, rec := range recs {
			select {
			case p.slots <- struct{}{}:
			case <-p.done:
				return
			}
			r := &Result{
				id: rec.id, header: rec.header, data: rec.data, ctx: context.Background(),
				done: make(chan struct{}), seq: rec.seq, attempt: rec.attempt,
			}
			// The stored header holds the trace context the job was
			// first sent with: the tracer gets it again.
			p.trace(r)
			if err := p.dispatch(r); err != nil {
				p.release()
				r.traced(err)
				return
			}
		}
	}()
}

// waitRecovered waits until every recovered job is in flight.
func (p *Producer) waitRecovered(ctx context.Context) error {
	select {
	case <-p.recovering:
		return nil
	default:
	}
	select {
	case <-p.recovering:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.done:
		return spmesh.ErrClosed
	}
}

// store writes r to the outbox (fsynced) as its first attempt, with its
// header as sent (with a tracer: the trace context of its span included).
func (p *Producer) store(ctx context.Context, r *Result) error {
	rec := &record{id: r.id, attempt: 1, header: r.header, data: r.data}
	if err := p.ob.put(ctx, p.done, rec); err != nil {
		return err
	}
	r.seq = rec.seq
	return nil
}

// settle removes r from the outbox once its fate is known to the caller:
// acked, dead-lettered, or abandoned by its ctx. A job cut short by Close
// stays, to be sent again by the next Producer on the path.
func (p *Producer) settle(r *Result, err error) {
	if err != nil && !errors.Is(err, ErrDeadLetter) && (p.closed.Load() || r.ctx.Err() == nil) {
		return
	}
	p.ob.remove(r.seq, int64(len(r.data))+64)
}
