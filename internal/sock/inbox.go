package sock

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/logx"
	"github.com/spmesh/spmesh/internal/sptcp"
	"github.com/spmesh/spmesh/internal/wire"
	"go.nanomsg.org/mangos/v3"
)

// Inbox is the receive side shared by the sockets that hand messages to the
// application (Subscriber, Puller): one goroutine reads the mangos socket,
// decodes each envelope, discards and counts frames that fail or are not of
// the expected kind, and queues what convert returns on a channel the inbox
// owns.
//
// The channel holds at most Settings.RecvQueue messages and, beyond the
// first, Settings.QueueBytes bytes (each message is charged its frame's
// size, a batch frame to its first message, plus a fixed overhead). When
// either bound is reached:
//
//   - on a SUB socket (lossy; not SubHold), the oldest queued messages are dropped to
//     make room (counted in Dropped, and reported to OnDrop): the reader
//     keeps reading, so the socket's own queue stays short;
//   - on other sockets (PULL, SubHold), the reader waits: the socket's receive queue
//     fills, then the connections stop being read and the senders block.
//     That queue is sized max(2, QueueBytes/MaxMsgSize) frames (at most
//     RecvQueue) so that it too holds about QueueBytes at most.
//
// Besides, each connection holds the frame being read and the transport's
// buffers. So a stalled application holds about QueueBytes (SUB) or
// 2 x QueueBytes (PULL), whatever the message size.
type Inbox[T any] struct {
	so      *Socket
	ch      chan T
	done    chan struct{} // closed by Close: the reader stops at once
	ended   chan struct{} // closed when the reader has returned
	once    sync.Once
	drainMu sync.Mutex
	drain   atomic.Bool
	emptied chan struct{}           // capacity 1: Next took the last queued message during a Drain
	usedC   atomic.Bool             // C was called: the application may take messages without Next
	parked  atomic.Int32            // times Drain waited on the application alone (the reader had ended; for tests)
	lossy   bool                    // drop the oldest rather than wait (SUB)
	bytes   bool                    // count received bytes here (PULL; SUB counts its own, sub.go)
	onDrop  atomic.Pointer[func(T)] // told of each message dropped to make room

	// Byte accounting, by the reader goroutine only: sizes is a ring of the
	// charges of the messages sent on ch and not known to be taken (the
	// oldest at head); a message is known taken once len(ch) is below n.
	maxBytes int
	held     int
	sizes    []int32
	head, n  int
	frame    int           // the frame being decoded, charged to its first message
	room     chan struct{} // Next signals the reader waiting for bytes
	waiting  atomic.Bool
}

// itemOverhead is what a queued message is charged besides its frame: its
// struct, header map and channel slot, roughly.
const itemOverhead = 256

// Pooled reports whether a receiver copies what it keeps out of m and
// frees it, so that its buffer goes back to mangos' pool (a frame of up to
// sptcp.PooledMax bytes), rather than keeping m's buffer as is: SP/TCP
// reads a larger frame into a buffer of its own (over inproc, a pooled
// buffer kept is only not recycled).
func Pooled(m *Frame) bool { return len(m.Body) <= sptcp.PooledMax }

// FrameFunc turns one received frame into messages, handing each to emit
// in order; emit reports false once the inbox is closing (stop then). It
// owns m: it frees it or hands its memory to the messages. An error counts
// the frame as a decode error.
type FrameFunc[T any] func(m *Frame, emit func(T) bool) error

// NewInbox starts reading so for frames of one kind. convert turns a
// decoded envelope into a message (it may keep env.Body), or reports false
// to skip it silently.
func NewInbox[T any](so *Socket, kind wire.Kind, convert func(env *wire.Msg) (T, bool)) *Inbox[T] {
	var (
		env  wire.Msg
		slab []byte // small bodies are copied into it, one after another
	)
	return NewFrameInbox(so, func(m *Frame, emit func(T) bool) error {
		if err := wire.Decode(m.Body, &env); err != nil || env.Kind != kind {
			m.Free()
			if err == nil {
				err = fmt.Errorf("%w: got a %d frame, want %d", spmesh.ErrDecode, env.Kind, kind)
			}
			return err
		}
		if Pooled(m) {
			// The application gets a copy of the body; the buffer goes
			// back to the pool. A large frame is handed over as is (never
			// freed: the message aliases it).
			env.Body = copyBody(&slab, env.Body)
			m.Free()
		}
		if v, ok := convert(&env); ok {
			emit(v)
		}
		return nil
	})
}

// A body up to slabMax bytes is copied into a shared block of slabSize
// bytes rather than an allocation of its own: one allocation serves many
// small messages. A message kept by the application keeps its whole block
// alive (at most slabSize bytes).
const (
	slabSize = 4 << 10
	slabMax  = 512
)

// copyBody returns a copy of b, carved from *slab when b is small. The copy's
// capacity is its length, so appending to it never writes over a neighbour.
func copyBody(slab *[]byte, b []byte) []byte {
	n := len(b)
	if n == 0 || n > slabMax {
		return append([]byte(nil), b...)
	}
	s := *slab
	if cap(s)-len(s) < n {
		s = make([]byte, 0, slabSize)
	}
	s = append(s, b...)
	*slab = s
	return s[len(s)-n : len(s) : len(s)]
}

// NewFrameInbox starts reading so, turning each frame into messages with
// decode (which runs on the reader goroutine only).
func NewFrameInbox[T any](so *Socket, decode FrameFunc[T]) *Inbox[T] {
	st := &so.Settings
	in := &Inbox[T]{
		so:       so,
		ch:       make(chan T, st.RecvQueue),
		done:     make(chan struct{}),
		ended:    make(chan struct{}),
		maxBytes: st.QueueBytes,
		sizes:    make([]int32, st.RecvQueue+1),
		room:     make(chan struct{}, 1),
		emptied:  make(chan struct{}, 1),
	}
	if in.maxBytes <= 0 {
		in.maxBytes = DefaultQueueBytes
	}
	in.lossy = so.m.Info().Self == mangos.ProtoSub && !so.Holds()
	in.bytes = so.m.Info().Self != mangos.ProtoSub
	if in.lossy {
		// The socket's own queue, in frames (LossyFrameQueue): the reader
		// empties it as fast as it decodes (it never waits for the
		// application), so it fills only while the reader falls behind
		// the network; a full one drops its oldest frame (a gap the
		// subscriber counts).
		_ = so.m.SetOption(mangos.OptionReadQLen, LossyFrameQueue(st))
	} else {
		// The socket's own queue, in frames, bounded in bytes too (see Inbox).
		qlen := min(st.RecvQueue, max(2, in.maxBytes/max(st.MaxMsgSize, 1)))
		_ = so.m.SetOption(mangos.OptionReadQLen, qlen)
	}
	go in.run(decode)
	return in
}

// LossyFrameQueue is the frame queue of a SUB socket with settings st:
// RecvQueue frames, as many as the messages the application's queue
// holds (a frame carries at least one). It holds frames only while the
// reader is behind the network (the reader never waits), and QueueBytes
// bytes at most (sub.go).
func LossyFrameQueue(st *Settings) int { return st.RecvQueue }

func (in *Inbox[T]) run(decode FrameFunc[T]) {
	defer close(in.ended)
	defer close(in.ch)
	emit := in.emit // once: a method value passed on would allocate per frame
	for {
		m, err := in.so.m.RecvMsg()
		if err != nil {
			if errors.Is(err, mangos.ErrClosed) {
				return
			}
			in.so.Settings.Logger.Warn("spmesh: receive", "err", Err(err))
			continue
		}
		in.frame = len(m.Body) // before decode, which may free m
		from := m.Pipe
		if in.bytes {
			in.so.C.BytesReceived.Add(uint64(in.frame))
		}
		if err := decode(frame(m), emit); err != nil {
			in.so.C.DecodeErrors.Add(1)
			addr := pipeAddr(from)
			in.so.logWarn(addr, "spmesh: discarded bad frame", logx.Remote, addr, logx.Err, err)
		}
		select {
		case <-in.done:
			return
		default:
		}
	}
}

// emit queues v, waiting while the channel is full or holds QueueBytes;
// false once closing (v is then counted as dropped).
func (in *Inbox[T]) emit(v T) bool {
	// Count first: the application may hold v before the send returns.
	in.so.C.Received.Add(1)
	c := in.frame + itemOverhead
	in.frame = 0
	if in.lossy {
		in.makeRoom(c)
		in.ch <- v // cannot block: there is room, and only this goroutine sends
		in.charge(c)
		return true
	}
	if in.held+c > in.maxBytes && !in.waitBytes(c) {
		in.so.C.Received.Add(^uint64(0))
		in.so.C.Dropped.Add(1)
		in.so.C.DroppedClosed.Add(1)
		return false
	}
	select {
	case in.ch <- v: // the common case, without the full select
		in.charge(c)
		return true
	default:
	}
	select {
	case in.ch <- v:
		in.charge(c)
		return true
	case <-in.done:
		in.so.C.Received.Add(^uint64(0))
		in.so.C.Dropped.Add(1)
		in.so.C.DroppedClosed.Add(1)
		return false
	}
}

// makeRoom drops the oldest queued messages until one of c bytes fits.
func (in *Inbox[T]) makeRoom(c int) {
	for {
		in.reconcile()
		if in.n == 0 || len(in.ch) < cap(in.ch) && in.held+c <= in.maxBytes {
			return
		}
		select {
		case old := <-in.ch:
			in.so.C.Received.Add(^uint64(0))
			in.so.C.Dropped.Add(1)
			in.so.C.DroppedQueueFull.Add(1)
			if f := in.onDrop.Load(); f != nil {
				(*f)(old)
			}
		default: // the application took it meanwhile
		}
	}
}

// OnDrop sets f to be told of each queued message dropped to make room
// (SUB only), from the reader goroutine.
func (in *Inbox[T]) OnDrop(f func(T)) { in.onDrop.Store(&f) }

// charge records a message of c bytes sent on ch.
func (in *Inbox[T]) charge(c int) {
	in.reconcile()
	i := in.head + in.n
	if i >= len(in.sizes) {
		i -= len(in.sizes)
	}
	in.sizes[i] = int32(min(c, 1<<31-1))
	in.n++
	in.held += c
}

// reconcile releases the charges of the messages the application took.
func (in *Inbox[T]) reconcile() {
	for in.n > len(in.ch) {
		in.held -= int(in.sizes[in.head])
		if in.head++; in.head == len(in.sizes) {
			in.head = 0
		}
		in.n--
	}
}

// waitBytes waits until a message of c bytes fits in QueueBytes (or the
// queue is empty); false once closing.
func (in *Inbox[T]) waitBytes(c int) bool {
	var t *time.Timer
	poll := 500 * time.Microsecond
	for {
		in.reconcile()
		if in.n == 0 || in.held+c <= in.maxBytes {
			return true
		}
		in.waiting.Store(true)
		in.reconcile() // a message taken before waiting was set sent no signal
		if in.n == 0 || in.held+c <= in.maxBytes {
			in.waiting.Store(false)
			return true
		}
		// Next signals; a reader of C does not, hence the polling.
		if t == nil {
			t = time.NewTimer(poll)
			defer t.Stop()
		} else {
			poll = min(2*poll, 16*time.Millisecond)
			t.Reset(poll)
		}
		select {
		case <-in.room:
		case <-t.C:
		case <-in.done:
			in.waiting.Store(false)
			return false
		}
		in.waiting.Store(false)
	}
}

// took tells a reader waiting for bytes that a message was taken, and a
// Drain that the queue is empty.
func (in *Inbox[T]) took() {
	if in.waiting.Load() {
		select {
		case in.room <- struct{}{}:
		default:
		}
	}
	if in.drain.Load() && len(in.ch) == 0 {
		in.wakeDrain()
	}
}

// Next returns the next message, waiting until one arrives or ctx ends.
func (in *Inbox[T]) Next(ctx context.Context) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	if in.so.Closed() && !in.drain.Load() {
		return zero, spmesh.ErrClosed
	}
	select {
	case v, ok := <-in.ch: // the common case, without the full select
		if !ok {
			return zero, spmesh.ErrClosed
		}
		in.took()
		return v, nil
	default:
	}
	select {
	case v, ok := <-in.ch:
		if !ok {
			return zero, spmesh.ErrClosed
		}
		in.took()
		return v, nil
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// C is the inbox's channel; it is closed on Close, or by Drain once empty.
func (in *Inbox[T]) C() <-chan T {
	if !in.usedC.Swap(true) {
		in.wakeDrain() // a Drain under way polls from now on
	}
	return in.ch
}

// wakeDrain wakes a Drain waiting for the queue to empty, if any.
func (in *Inbox[T]) wakeDrain() {
	select {
	case in.emptied <- struct{}{}:
	default:
	}
}

// All iterates until ctx ends or the inbox closes; a final error other than
// closing is yielded once.
func (in *Inbox[T]) All(ctx context.Context) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for {
			v, err := in.Next(ctx)
			if errors.Is(err, spmesh.ErrClosed) {
				return
			}
			if !yield(v, err) || err != nil {
				return
			}
		}
	}
}

// Drain closes the socket (no more intake; advertisements withdrawn), waits
// until the application has taken every queued message, then closes. If ctx
// ends first the rest are dropped and ctx.Err() returned.
func (in *Inbox[T]) Drain(ctx context.Context) error {
	in.drainMu.Lock()
	defer in.drainMu.Unlock()
	if in.so.Closed() {
		return spmesh.ErrClosed
	}
	in.drain.Store(true)
	in.so.C.Draining.Store(true)
	in.so.Close() // the reader returns after its last message and closes ch
	// Next tells when it took the last message (emptied); a receive
	// from C tells nothing, so an application that was given C is
	// polled for (C wakes this loop when it is first called during
	// the Drain, so that the polling starts).
	var poll <-chan time.Time
	var err error
	ended := in.ended // nil once closed: a closed channel is always ready
	for err == nil && (ended != nil || len(in.ch) > 0) {
		if poll == nil && in.usedC.Load() {
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			poll = t.C
		}
		if ended == nil {
			in.parked.Add(1)
		}
		select {
		case <-ended:
			ended = nil
		case <-in.emptied:
		case <-poll:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	in.drain.Store(false)
	in.Close()
	return err
}

// Close closes the socket and stops the reader at once; queued messages are
// dropped and counted as Dropped. It is idempotent.
func (in *Inbox[T]) Close() error {
	err := in.so.Close()
	in.once.Do(func() {
		close(in.done)
		<-in.ended
		for range in.ch {
			in.so.C.Dropped.Add(1)
			in.so.C.DroppedClosed.Add(1)
		}
	})
	<-in.ended
	return err
}
