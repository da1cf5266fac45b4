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
	"github.com/spmesh/spmesh/internal/wire"
	"go.nanomsg.org/mangos/v3"
)

// Inbox is the receive side shared by the sockets that hand messages to the
// application (Subscriber, Puller): one goroutine reads the mangos socket,
// decodes each envelope, discards and counts frames that fail or are not of
// the expected kind, and queues what convert returns on a channel the inbox
// owns. When the channel is full the goroutine waits, so mangos' own queue
// fills and the protocol's drop policy applies.
type Inbox[T any] struct {
	so      *Socket
	ch      chan T
	done    chan struct{} // closed by Close: the reader stops at once
	ended   chan struct{} // closed when the reader has returned
	once    sync.Once
	drainMu sync.Mutex
	drain   atomic.Bool
}

// pooledMax is the largest frame whose buffer mangos recycles.
const pooledMax = 64 << 10

// Pooled reports whether m's buffer goes back to mangos' pool when freed:
// a receiver copies what it keeps out of such a frame and frees it, and
// keeps a larger frame's buffer as is.
func Pooled(m *mangos.Message) bool { return len(m.Body) <= pooledMax }

// FrameFunc turns one received frame into messages, handing each to emit
// in order; emit reports false once the inbox is closing (stop then). It
// owns m: it frees it or hands its memory to the messages. An error counts
// the frame as a decode error.
type FrameFunc[T any] func(m *mangos.Message, emit func(T) bool) error

// NewInbox starts reading so for frames of one kind. convert turns a
// decoded envelope into a message (it may keep env.Body), or reports false
// to skip it silently.
func NewInbox[T any](so *Socket, kind wire.Kind, convert func(env *wire.Msg) (T, bool)) *Inbox[T] {
	var (
		env  wire.Msg
		slab []byte // small bodies are copied into it, one after another
	)
	return NewFrameInbox(so, func(m *mangos.Message, emit func(T) bool) error {
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
	in := &Inbox[T]{
		so:    so,
		ch:    make(chan T, so.Settings.RecvQueue),
		done:  make(chan struct{}),
		ended: make(chan struct{}),
	}
	go in.run(decode)
	return in
}

func (in *Inbox[T]) run(decode FrameFunc[T]) {
	defer close(in.ended)
	defer close(in.ch)
	emit := in.emit // once: a method value passed on would allocate per frame
	for {
		m, err := in.so.M.RecvMsg()
		if err != nil {
			if errors.Is(err, mangos.ErrClosed) {
				return
			}
			in.so.Settings.Logger.Warn("spmesh: receive", "err", Err(err))
			continue
		}
		if err := decode(m, emit); err != nil {
			in.so.C.DecodeErrors.Add(1)
			in.so.Settings.Logger.Debug("spmesh: discarded bad frame", "err", err)
		}
		select {
		case <-in.done:
			return
		default:
		}
	}
}

// emit queues v, waiting while the channel is full; false once closing (v
// is then counted as dropped).
func (in *Inbox[T]) emit(v T) bool {
	// Count first: the application may hold v before the send returns.
	in.so.C.Received.Add(1)
	select {
	case in.ch <- v: // the common case, without the full select
		return true
	default:
	}
	select {
	case in.ch <- v:
		return true
	case <-in.done:
		in.so.C.Received.Add(^uint64(0))
		in.so.C.Dropped.Add(1)
		return false
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
		return v, nil
	default:
	}
	select {
	case v, ok := <-in.ch:
		if !ok {
			return zero, spmesh.ErrClosed
		}
		return v, nil
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// C is the inbox's channel; it is closed on Close, or by Drain once empty.
func (in *Inbox[T]) C() <-chan T { return in.ch }

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
	in.so.Close() // the reader returns after its last message and closes ch
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	var err error
	ended := false
	for err == nil && (!ended || len(in.ch) > 0) {
		select {
		case <-in.ended:
			ended = true
		case <-t.C:
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
		}
	})
	<-in.ended
	return err
}
