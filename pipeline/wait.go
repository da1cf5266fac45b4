package pipeline

import "context"

// WaitPeers waits until at least n pullers are connected (a message pushed
// now can go to any of them), the socket closes (spmesh.ErrClosed) or ctx
// ends (ctx's error, wrapped with the number connected and the last
// connection error). It waits on connection events; it does not poll.
func (p *Pusher) WaitPeers(ctx context.Context, n int) error {
	return p.so.WaitPeers(ctx, n)
}

// WaitPeers waits until at least n pushers are connected, the socket
// closes (spmesh.ErrClosed) or ctx ends (ctx's error, wrapped with the
// number connected and the last connection error). It waits on connection
// events; it does not poll.
func (pl *Puller) WaitPeers(ctx context.Context, n int) error {
	return pl.so.WaitPeers(ctx, n)
}

// WaitPeers waits until at least n workers are connected (a job sent now
// can go to any of them), the producer closes (spmesh.ErrClosed) or ctx
// ends (ctx's error, wrapped with the number connected and the last
// connection error). It waits on connection events; it does not poll.
func (p *Producer) WaitPeers(ctx context.Context, n int) error {
	return p.so.WaitPeers(ctx, n)
}

// WaitPeers waits until at least n producers are connected, the worker
// closes (spmesh.ErrClosed) or ctx ends (ctx's error, wrapped with the
// number connected and the last connection error). It waits on connection
// events; it does not poll.
func (w *Worker) WaitPeers(ctx context.Context, n int) error {
	return w.so.WaitPeers(ctx, n)
}
