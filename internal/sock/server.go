package sock

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/wire"
	"go.nanomsg.org/mangos/v3"
)

// Linger is how long Drain leaves the last replies to reach the wire before
// closing the connections (mangos has no flush).
const Linger = 50 * time.Millisecond

// ServeFunc answers one frame taken by a [Server] worker. base is the
// parent of handler contexts (cancelled by Close). It returns the reply to
// send, or nil for none. It must not keep m past its return.
type ServeFunc func(base context.Context, m *mangos.Message) (reply *mangos.Message)

// Server is the serving side shared by the REP and RESPONDENT based types
// (Replier, Worker, Respondent): n workers, each on its own mangos context,
// take a frame, run serve, and send the reply it returns. It owns the
// handlers' base context, panic recovery, Drain and Close.
type Server struct {
	so      *Socket
	serve   ServeFunc
	workers []*srvWorker
	wg      sync.WaitGroup

	base    context.Context
	cancel  context.CancelFunc
	drainMu sync.Mutex
	drain   atomic.Bool
	once    sync.Once

	InFlight atomic.Int64  // handlers running
	Errors   atomic.Uint64 // handler errors (panics included) and replies that failed to encode
	Panics   atomic.Uint64 // recovered handler panics
}

// worker states, so that Drain stops idle workers without losing a frame.
const (
	busy int32 = iota
	idle
	stopped
)

type srvWorker struct {
	mc    mangos.Context
	state atomic.Int32
}

// NewServer prepares n workers on so; Start starts them. sendTimeout, when positive, bounds how
// long a worker waits to queue a reply (a peer that stops reading cannot
// wedge it); the reply is then dropped and counted.
func NewServer(so *Socket, n int, sendTimeout time.Duration, serve ServeFunc) (*Server, error) {
	s := &Server{so: so, serve: serve}
	s.base, s.cancel = context.WithCancel(context.Background())
	for range n {
		mc, err := so.M.OpenContext()
		if err == nil && sendTimeout > 0 {
			err = mc.SetOption(mangos.OptionSendDeadline, sendTimeout)
		}
		if err != nil {
			s.Close()
			return nil, Err(err)
		}
		s.workers = append(s.workers, &srvWorker{mc: mc})
	}
	return s, nil
}

// Start starts the workers.
func (s *Server) Start() {
	s.wg.Add(len(s.workers))
	for _, w := range s.workers {
		go s.run(w)
	}
}

func (s *Server) run(w *srvWorker) {
	defer s.wg.Done()
	defer w.mc.Close()
	for {
		if !w.state.CompareAndSwap(busy, idle) {
			return
		}
		// Drain sets drain, then stops every idle worker: whichever of the
		// two sees the other first stops this one.
		if s.drain.Load() && w.state.CompareAndSwap(idle, stopped) {
			return
		}
		m, err := w.mc.RecvMsg()
		if !w.state.CompareAndSwap(idle, busy) {
			// Drain closed the context under us: a frame taken now cannot
			// be answered. Its sender resends it when the connection closes.
			if m != nil {
				s.so.C.Dropped.Add(1)
				m.Free()
			}
			return
		}
		if err != nil {
			if errors.Is(err, mangos.ErrClosed) {
				return
			}
			s.so.Settings.Logger.Warn("spmesh: receive", "err", Err(err))
			continue
		}
		reply := s.serve(s.base, m)
		m.Free()
		if reply == nil {
			continue
		}
		if err := w.mc.SendMsg(reply); err != nil {
			reply.Free()
			s.so.C.Dropped.Add(1)
			continue
		}
		s.so.C.Sent.Add(1)
	}
}

// Draining reports whether Drain was called.
func (s *Server) Draining() bool { return s.drain.Load() }

// HandlerContext returns the context for a handler of a frame carrying the
// sender's deadline (Unix nanoseconds, 0 for none).
func (s *Server) HandlerContext(base context.Context, deadline int64) (context.Context, context.CancelFunc) {
	if deadline == 0 {
		return base, func() {}
	}
	return context.WithDeadline(base, time.Unix(0, deadline))
}

// Call runs a handler, counting it in InFlight and turning a
// panic into a *spmesh.RemoteError with code spmesh.CodePanic (logged with
// its stack, the server keeps serving). what and id identify the frame in
// the log.
func (s *Server) Call(what string, id spmesh.ID, f func() (any, error)) (v any, err error) {
	s.InFlight.Add(1)
	defer func() {
		s.InFlight.Add(-1)
		if p := recover(); p != nil {
			s.Panics.Add(1)
			s.so.Settings.Logger.Error("spmesh: handler panic recovered", what, id, "panic", p, "stack", string(debug.Stack()))
			v, err = nil, spmesh.Errorf(spmesh.CodePanic, "panic: %v", p)
		}
	}()
	return f()
}

// Reply encodes the reply env with v as its body, or, when herr is non-nil
// or v fails to encode, as an error reply carrying herr's message and code
// and errFlags.
func (s *Server) Reply(env *wire.Msg, v any, herr error, errFlags uint64) *mangos.Message {
	env.Time = time.Now().UnixNano()
	if herr == nil {
		m, err := s.so.Encode(env, v)
		if err == nil {
			return m
		}
		herr = fmt.Errorf("spmesh: encode reply: %w", err)
		s.Errors.Add(1)
		s.so.Settings.Logger.Warn("spmesh: cannot send reply", "id", env.ID, "err", err)
	}
	SetError(env, herr)
	env.Flags |= errFlags
	m, err := s.so.EncodeWith(spmesh.Raw, env, nil)
	if err != nil { // only an error message over the size limit
		env.Err = env.Err[:min(len(env.Err), 256)]
		m, _ = s.so.EncodeWith(spmesh.Raw, env, nil)
	}
	return m
}

// SetError fills env's error fields from err: its message, and its code
// when err is (or wraps) a spmesh.Coder or a *spmesh.RemoteError.
func SetError(env *wire.Msg, err error) {
	if re, ok := err.(*spmesh.RemoteError); ok {
		// Passing on a remote error: keep its own message and code.
		env.Err, env.Code = re.Message, int64(re.Code)
		if env.Err == "" {
			env.Err = "error"
		}
		return
	}
	env.Err = err.Error()
	if env.Err == "" {
		env.Err = "error"
	}
	var c spmesh.Coder
	var re *spmesh.RemoteError
	switch {
	case errors.As(err, &c):
		env.Code = int64(c.Code())
	case errors.As(err, &re):
		env.Code = int64(re.Code)
	}
}

// Drain stops taking frames, lets the running handlers finish and send
// their replies, leaves them Linger to reach the wire, then closes. If ctx
// ends first it closes at once (handlers see their context cancelled) and
// returns ctx.Err().
func (s *Server) Drain(ctx context.Context) error {
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	if s.so.Closed() {
		return spmesh.ErrClosed
	}
	s.drain.Store(true)
	for _, w := range s.workers {
		if w.state.CompareAndSwap(idle, stopped) {
			w.mc.Close()
		}
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
		t := time.NewTimer(Linger)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.Close()
	<-done
	return err
}

// Close closes at once: the socket first (a handler ending because of the
// cancel must not get its reply out, so that the sender resends), then the
// handlers' contexts; it returns once the handlers have returned. It is
// idempotent.
func (s *Server) Close() error {
	err := s.so.Close()
	s.once.Do(s.cancel)
	s.wg.Wait()
	return err
}
