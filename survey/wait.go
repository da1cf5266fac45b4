package survey

import "context"

// WaitPeers waits until at least n respondents are connected (a survey
// sent now reaches each of them), the socket closes (spmesh.ErrClosed) or
// ctx ends (ctx's error, wrapped with the number connected and the last
// connection error). It waits on connection events; it does not poll.
func (s *Surveyor) WaitPeers(ctx context.Context, n int) error {
	return s.so.WaitPeers(ctx, n)
}

// WaitPeers waits until at least n surveyors are connected, the socket
// closes (spmesh.ErrClosed) or ctx ends (ctx's error, wrapped with the
// number connected and the last connection error). It waits on connection
// events; it does not poll.
func (r *Respondent) WaitPeers(ctx context.Context, n int) error {
	return r.so.WaitPeers(ctx, n)
}
