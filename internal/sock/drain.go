package sock

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/spmesh/spmesh/internal/sptcp"
	"go.nanomsg.org/mangos/v3/protocol"
)

// flushed is Flushed of a send-only protocol (Fanout, Spread): it waits
// until out, the frames it queued, is empty, then until each connection's
// transport has written what it was given to the kernel (spmesh's TCP
// transport buffers it; a transport without the option writes at once), or
// ctx ends. pipes calls each on every connection, under the protocol's lock.
func flushed(ctx context.Context, out *Pending, pipes func(each func(protocol.Pipe))) error {
	if err := out.Wait(ctx); err != nil {
		return err
	}
	var list []protocol.Pipe
	pipes(func(p protocol.Pipe) { list = append(list, p) })
	for _, pp := range list {
		op, ok := pp.(interface{ GetOption(string) (any, error) }) // mangos' pipes are
		if !ok {
			continue
		}
		v, err := op.GetOption(sptcp.OptionFlushed)
		if err != nil {
			continue
		}
		if f, ok := v.(func(context.Context) error); ok {
			if err := f(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// Pending counts work in progress, so that a Drain can wait until none is
// left without polling: frames queued for (or being written to) a
// connection, calls or surveys running. Add and Done cost one atomic
// operation each; the count reaching zero while a Drain waits also takes a
// lock to wake it. Once Stop is called, Enter refuses new work. The zero
// value is ready.
type Pending struct {
	n       atomic.Int64
	stopped atomic.Bool
	waiters atomic.Int32
	mu      sync.Mutex
	ch      chan struct{} // closed when n reaches zero and someone waits
}

// Add counts n more units of work. Call it before the work can be seen as
// done (before a frame is queued, say), so the count never dips below the
// truth.
func (p *Pending) Add(n int) { p.n.Add(int64(n)) }

// Done counts n units of work finished.
func (p *Pending) Done(n int) {
	if p.n.Add(-int64(n)) <= 0 && p.waiters.Load() > 0 {
		p.mu.Lock()
		if p.ch != nil {
			close(p.ch)
			p.ch = nil
		}
		p.mu.Unlock()
	}
}

// Len is the work in progress.
func (p *Pending) Len() int { return int(p.n.Load()) }

// Enter counts one unit of work unless Stop was called: then it counts
// nothing and reports false. A Wait that starts after Stop sees every
// Enter that succeeded.
func (p *Pending) Enter() bool {
	p.n.Add(1)
	if p.stopped.Load() {
		p.Done(1)
		return false
	}
	return true
}

// Stop makes Enter refuse new work from now on. It reports whether it was
// already stopped.
func (p *Pending) Stop() bool { return p.stopped.Swap(true) }

// Stopped reports whether Stop was called.
func (p *Pending) Stopped() bool { return p.stopped.Load() }

// Wait returns nil once no work is in progress, or ctx's error when ctx
// ends first.
func (p *Pending) Wait(ctx context.Context) error {
	p.waiters.Add(1)
	defer p.waiters.Add(-1)
	for {
		// Take the channel before reading the count: a Done reaching zero
		// in between closes it, so no wake-up is missed.
		p.mu.Lock()
		if p.ch == nil {
			p.ch = make(chan struct{})
		}
		ch := p.ch
		p.mu.Unlock()
		if p.n.Load() <= 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
