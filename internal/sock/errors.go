package sock

import (
	"context"
	"errors"
	"fmt"

	"github.com/spmesh/spmesh"
	"go.nanomsg.org/mangos/v3"
)

// Err translates a mangos error into spmesh's vocabulary.
func Err(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mangos.ErrClosed):
		return spmesh.ErrClosed
	case errors.Is(err, mangos.ErrTooLong):
		return spmesh.ErrTooLarge
	case errors.Is(err, mangos.ErrNoPeers):
		return spmesh.ErrNoPeers
	case errors.Is(err, mangos.ErrRecvTimeout), errors.Is(err, mangos.ErrSendTimeout):
		return spmesh.ErrTimeout
	case errors.Is(err, mangos.ErrBadAddr), errors.Is(err, mangos.ErrBadTran):
		return fmt.Errorf("%w: bad address (%v)", spmesh.ErrInvalidOption, err)
	case errors.Is(err, mangos.ErrAddrInUse):
		return fmt.Errorf("spmesh: address in use: %v", err)
	case errors.Is(err, mangos.ErrTLSNoConfig), errors.Is(err, mangos.ErrTLSNoCert):
		return fmt.Errorf("%w: TLS: %v", spmesh.ErrInvalidOption, err)
	}
	return fmt.Errorf("spmesh: %v", err)
}

// IsClosed reports whether err, from a socket, Frame sender or SurveyCtx
// (before Err translates it), means the socket or context closed.
func IsClosed(err error) bool { return errors.Is(err, mangos.ErrClosed) }

// IsRecvTimeout reports whether err, from Ticket.Wait or SurveyCtx.Recv,
// means the receive deadline passed with nothing received.
func IsRecvTimeout(err error) bool { return errors.Is(err, mangos.ErrRecvTimeout) }

// IsCanceled reports whether err, from Ticket.Wait, means the request's
// connection dropped before its reply came (the request may be resent).
func IsCanceled(err error) bool { return errors.Is(err, mangos.ErrCanceled) }

// NoPeers returns an error wrapping spmesh.ErrNoPeers that says what is
// missing (e.g. "no worker connected") and, when the socket recorded one,
// the last connection error (a refused handshake, a refused endpoint, a
// failed dial): why nobody could be reached. Every pattern produces its
// ErrNoPeers here.
func (so *Socket) NoPeers(what string) error {
	return NoPeersError(what, so.C.LastError())
}

// NoPeersError is NoPeers for a caller that holds the last error (from
// Stats().LastError) rather than the socket.
func NoPeersError(what, lastErr string) error {
	if lastErr == "" {
		return fmt.Errorf("%w: %s", spmesh.ErrNoPeers, what)
	}
	return fmt.Errorf("%w: %s (last error: %s)", spmesh.ErrNoPeers, what, lastErr)
}

// Explain adds the last connection error to err when err means that
// nobody could be reached: ErrNoPeers, or a context deadline that passed
// while no peer was connected. The result still wraps err (errors.Is holds
// for ErrNoPeers and context.DeadlineExceeded). Other errors are returned
// as they are.
func (so *Socket) Explain(err error) error {
	last := so.C.LastError()
	switch {
	case err == nil || last == "":
		return err
	case errors.Is(err, spmesh.ErrNoPeers):
		if err == spmesh.ErrNoPeers {
			return NoPeersError("nobody connected", last)
		}
		return fmt.Errorf("%w (last error: %s)", err, last)
	case errors.Is(err, context.DeadlineExceeded) && so.Peers() == 0:
		return fmt.Errorf("%w: no peers (last error: %s)", err, last)
	}
	return err
}

// CtxErr returns ctx.Err() when ctx has ended, else err translated: a call
// cut short by its context reports the context's error.
func CtxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return Err(err)
}
