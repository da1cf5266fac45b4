package sock

import (
	"context"
	"fmt"
	"sync"

	"github.com/spmesh/spmesh"
)

// peerSignal wakes the callers of WaitPeers when the socket's connection
// count changes or it closes: a channel closed and replaced on each change
// (a broadcast without polling).
type peerSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next change.
func (ps *peerSignal) wait() <-chan struct{} {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.ch == nil {
		ps.ch = make(chan struct{})
	}
	return ps.ch
}

// signal wakes every waiter. Cheap when nobody waits.
func (ps *peerSignal) signal() {
	ps.mu.Lock()
	if ps.ch != nil {
		close(ps.ch)
		ps.ch = nil
	}
	ps.mu.Unlock()
}

// WaitPeers returns nil once at least n connections are established
// (n <= 0: at once). A connection counts once its SP handshake is done and
// the protocol holds it: on a PUB socket, a frame sent from then on is
// queued for that subscriber. It returns spmesh.ErrClosed if the socket
// closes first, and when ctx ends, ctx's error wrapped with how many peers
// were connected and the last connection error (a refused dial, a failed
// handshake, a refused endpoint): errors.Is holds for ctx.Err().
func (so *Socket) WaitPeers(ctx context.Context, n int) error {
	for {
		// Take the channel before reading the count: a change in between
		// closes it, so no wake-up is missed.
		ch := so.wake.wait()
		if so.closed.Load() {
			return spmesh.ErrClosed
		}
		if so.Peers() >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return so.waitErr(ctx.Err(), n)
		}
	}
}

// waitErr is WaitPeers' error when ctx ended with err.
func (so *Socket) waitErr(err error, n int) error {
	have := so.Peers()
	if last := so.C.LastError(); last != "" {
		return fmt.Errorf("%w: %d of %d peers connected (last error: %s)", err, have, n, last)
	}
	return fmt.Errorf("%w: %d of %d peers connected (no connection error recorded: is anyone listening or dialing?)", err, have, n)
}
