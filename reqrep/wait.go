package reqrep

import "context"

// WaitPeers waits until at least n repliers are connected (their SP
// handshake done: a request sent now can go to any of them), the socket
// closes (spmesh.ErrClosed) or ctx ends (ctx's error, wrapped with the
// number connected and the last connection error). It waits on connection
// events; it does not poll.
func (r *Requester) WaitPeers(ctx context.Context, n int) error {
	return r.so.WaitPeers(ctx, n)
}

// WaitPeers waits until at least n requesters are connected, the socket
// closes (spmesh.ErrClosed) or ctx ends (ctx's error, wrapped with the
// number connected and the last connection error). It waits on connection
// events; it does not poll.
func (r *Replier) WaitPeers(ctx context.Context, n int) error {
	return r.so.WaitPeers(ctx, n)
}
