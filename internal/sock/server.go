package sock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/logx"
	"github.com/spmesh/spmesh/internal/wire"
	"go.nanomsg.org/mangos/v3"
)

// Linger is how long Drain leaves the last replies to reach the wire before
// closing the connections (mangos has no flush).
const Linger = 50 * time.Millisecond

// ServeFunc answers one frame taken by a [Server] worker. base is the
// parent of handler contexts (cancelled by Close). It returns the reply to
// send, or nil for none. It must not keep m past its return.
type ServeFunc func(base context.Context, m *Frame) (reply *Frame)

// Server is the serving side shared by the REP and RESPONDENT based types
// (Replier, Worker, Respondent): n workers, each on its own mangos context,
// take a frame, run serve, and send the reply it returns. It owns the
// handlers' base context, panic recovery, Drain and Close.
//
// Slow peers (nats-server's write_deadline): a reply waits at most
// Settings.SendTimeout for room in its peer's send queue. Past it the reply
// is dropped and counted (SendTimeouts, Dropped), and the connection to that
// peer is closed, as a peer that does not read its replies: every reply
// still waiting for it is released at once, and the peer, if it is spmesh,
// reconnects and resends what it has not had an answer to. While one
// worker waits for a peer, other replies to it wait at most stallAfter
// (250ms), and once that worker has waited longer than stallAfter, they
// are dropped (counted) without being tried. Every drop closes the
// connection, so no reply is dropped on a connection that stays open (its
// request would never be resent). So a peer that never reads
// holds one worker for the send timeout and others for at most stallAfter,
// once per connection: it never takes the replies of other peers with it.
// The replies queued for one peer are bounded in count and bytes
// (ServerSendQueue: 8 with the defaults, or QueueBytes worth), and a
// closed peer's queued replies are released at once, not at Close.
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

	sendTimeout time.Duration
	stallAfter  time.Duration // min(stallAfter, sendTimeout/2)
	pipes       sync.Map      // pipe id (uint32) -> *pipeState, for pipes replied to
	npipes      atomic.Int64

	endOnce sync.Once
	ended   chan struct{} // closed once every worker has returned

	// Credit is announced in every reply of ServeEnvelope and tooLarge
	// (0: none); with ReportLoad they also carry InFlight (acks). Set
	// before Start.
	Credit     uint32
	ReportLoad bool

	InFlight  atomic.Int64  // handlers running
	Errors    atomic.Uint64 // handler errors (panics included) and replies that failed to encode
	Panics    atomic.Uint64 // recovered handler panics
	Abandoned atomic.Uint64 // handlers still running when Close gave up waiting (HandlerGrace)
}

// HandlerGrace is how long Close waits for running handlers to return
// after cancelling their contexts. A handler that ignores its context keeps
// running after Close returns (its reply is never sent); it is counted in
// Server.Abandoned and logged.
const HandlerGrace = time.Second

// stallAfter bounds the wait of a reply to a peer that another worker is
// already waiting for, and is how long that worker must have waited for
// the peer to count as not reading: long past a scheduling hiccup or a
// queue that is draining, short enough not to hold workers. It is at most
// half the send timeout.
const stallAfter = 250 * time.Millisecond

// pipeState is what a Server knows of one peer's send queue.
type pipeState struct {
	since  atomic.Int64 // when the worker sending to it with the full timeout began (Unix ns); 0: none
	closed atomic.Bool  // closed for not taking a reply within the send timeout
}

// worker states, so that Drain stops idle workers without losing a frame.
const (
	busy int32 = iota
	idle
	stopped
)

// srvWorker is one serving goroutine's state. Its send deadline is its own
// reusable timer, which closes mc when a send takes too long (mangos' own
// send deadline would allocate a timer per reply); mc is then replaced.
type srvWorker struct {
	mc    mangos.Context // replaced (under mu) after the timer closed it
	mu    sync.Mutex
	state atomic.Int32
	timer *time.Timer   // armed around each send
	fired chan struct{} // the timer's function has closed mc
}

// expire is the timer's function: it ends the send in progress.
func (w *srvWorker) expire() {
	w.mu.Lock()
	mc := w.mc
	w.mu.Unlock()
	mc.Close()
	w.fired <- struct{}{}
}

// NewServer prepares n workers on so; Start starts them. Replies wait at
// most so.Settings.SendTimeout for a peer to take them (see Server).
func NewServer(so *Socket, n int, serve ServeFunc) (*Server, error) {
	s := &Server{so: so, serve: serve, sendTimeout: so.Settings.SendTimeout, ended: make(chan struct{})}
	if s.sendTimeout <= 0 {
		s.sendTimeout = DefaultSendTimeout
	}
	s.stallAfter = min(stallAfter, s.sendTimeout/2)
	s.base, s.cancel = context.WithCancel(context.Background())
	for range n {
		mc, err := so.m.OpenContext()
		if err != nil {
			for _, w := range s.workers {
				w.mc.Close()
			}
			s.once.Do(s.cancel)
			return nil, Err(err)
		}
		w := &srvWorker{mc: mc, fired: make(chan struct{}, 1)}
		w.timer = time.AfterFunc(time.Hour, w.expire)
		w.timer.Stop()
		s.workers = append(s.workers, w)
	}
	so.onPipe(func(ev mangos.PipeEvent, p mangos.Pipe) {
		if ev == mangos.PipeEventDetached {
			if _, ok := s.pipes.LoadAndDelete(p.ID()); ok {
				s.npipes.Add(-1)
			}
		}
	})
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
	defer func() { w.mc.Close() }() // the context of the moment
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
		if m != nil {
			s.so.C.BytesReceived.Add(uint64(len(m.Body)))
		}
		if !w.state.CompareAndSwap(idle, busy) {
			// Drain closed the context under us: a frame taken now cannot
			// be answered. Its sender resends it when the connection closes.
			if m != nil {
				s.so.C.Dropped.Add(1)
				s.so.C.DroppedClosed.Add(1)
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
		p := m.Pipe
		var reply *Frame
		if o, ok := s.so.oversized(m.Body); ok {
			reply = s.tooLarge(o)
		} else {
			reply = s.serve(s.base, frame(m))
		}
		m.Free()
		if reply == nil {
			s.forget(w)
			continue
		}
		s.send(w, p, reply.msg())
	}
}

// forget makes w drop its mangos context's reference to the pipe of the
// frame it took last, when no reply goes out on it. A REP or RESPONDENT
// context keeps the pipe it received from until its next send, and a pipe
// keeps its send queue: a context that took a frame from a peer that
// never reads and sent nothing back kept that closed peer's queue (up to
// WriteQLen replies, 264 MiB of 256 KiB replies) alive until the socket
// closed. The context is replaced by a fresh one; this happens only for
// frames not answered (refused, or replies dropped), not per reply.
func (s *Server) forget(w *srvWorker) {
	mc, err := s.so.m.OpenContext()
	if err != nil {
		return // the socket is closing: the loop ends, the contexts go
	}
	w.mu.Lock()
	old := w.mc
	w.mc = mc
	w.mu.Unlock()
	old.Close()
}

// send queues reply for pipe p (the peer the request came from), waiting
// at most the send timeout, or stallAfter while another worker waits for
// the same peer (see Server).
func (s *Server) send(w *srvWorker, p mangos.Pipe, reply *mangos.Message) {
	st := s.pipeState(p)
	d, waiter := s.sendTimeout, false
	if st != nil {
		if st.closed.Load() {
			s.dropSlow(p, reply) // mangos would discard it silently
			s.forget(w)
			return
		}
		now := time.Now().UnixNano()
		switch since := st.since.Load(); {
		case since == 0 && st.since.CompareAndSwap(0, now):
			waiter = true
		case since != 0 && now-since > int64(s.stallAfter):
			// Another worker has waited for this peer for a while: it
			// is not reading. Not even tried; the connection goes, so
			// that the peer resends the request.
			s.dropSlow(p, reply)
			s.hangUp(p, st)
			s.forget(w)
			return
		default:
			d = s.stallAfter // another worker is sending to it just now
		}
	}
	w.timer.Reset(d)
	n := len(reply.Body) // SendMsg takes reply
	err := w.mc.SendMsg(reply)
	timedOut := !w.timer.Stop()
	if timedOut {
		<-w.fired // mc is closed: replace it
		if mc, oerr := s.so.m.OpenContext(); oerr == nil {
			w.mu.Lock()
			w.mc = mc
			w.mu.Unlock()
		} // else the socket is closing: the closed mc ends the loop
	}
	if waiter {
		st.since.Store(0)
	}
	switch {
	case err == nil:
		s.so.C.BytesSent.Add(uint64(n)) // before Sent: who sees Sent sees the bytes
		s.so.C.Sent.Add(1)
	case timedOut:
		s.dropSlow(p, reply)
		s.hangUp(p, st)
	default:
		reply.Free()
		s.so.C.Dropped.Add(1)
		s.so.C.DroppedClosed.Add(1)
	}
}

// hangUp closes the connection to the peer at p (once) after a reply to
// it was dropped: a REQ peer resends what it had in flight on a connection
// that closed, so a dropped reply costs a resend, never a call that waits
// forever (a Requester has no attempt timeout by default). A peer that
// keeps a connection open while its replies are dropped would not know.
func (s *Server) hangUp(p mangos.Pipe, st *pipeState) {
	if st == nil || st.closed.Swap(true) {
		return
	}
	addr := pipeAddr(p)
	s.so.C.SetLastError(addr, fmt.Errorf("spmesh: closed: the peer took no reply in time (send timeout %v; %v while another reply to it waits)", s.sendTimeout, s.stallAfter))
	s.so.logWarn(addr, "spmesh: closing the connection of a peer that does not read its replies",
		logx.Remote, addr, "send_timeout", s.sendTimeout)
	p.Close()
}

// dropSlow drops a reply that the peer at p is not taking, and counts it.
func (s *Server) dropSlow(p mangos.Pipe, reply *mangos.Message) {
	reply.Free()
	s.so.C.SendTimeouts.Add(1)
	s.so.C.Drop(1, &s.so.C.DroppedSendTimeout)
	addr := pipeAddr(p)
	s.so.logRated(slog.LevelDebug, addr, "spmesh: reply dropped: the peer is not taking replies",
		logx.Remote, addr, "send_timeout", s.sendTimeout)
}

// pipeState returns p's state, creating it on first use; nil without a pipe.
func (s *Server) pipeState(p mangos.Pipe) *pipeState {
	if p == nil {
		return nil
	}
	id := p.ID()
	if v, ok := s.pipes.Load(id); ok {
		return v.(*pipeState)
	}
	// A reply to a pipe that detached meanwhile leaves an entry behind:
	// bound them by forgetting every state now and then (what is lost is
	// only which peers were slow).
	if s.npipes.Load() > int64(2*s.so.Peers()+1024) {
		s.pipes.Range(func(k, _ any) bool {
			if _, ok := s.pipes.LoadAndDelete(k); ok {
				s.npipes.Add(-1)
			}
			return true
		})
	}
	v, loaded := s.pipes.LoadOrStore(id, &pipeState{})
	if !loaded {
		s.npipes.Add(1)
	}
	return v.(*pipeState)
}

// pipeAddr is p's remote address, for logs.
func pipeAddr(p mangos.Pipe) string {
	if p == nil {
		return ""
	}
	if v, err := p.GetOption(mangos.OptionRemoteAddr); err == nil {
		if a, ok := v.(net.Addr); ok {
			return a.String()
		}
	}
	return p.Address()
}

// tooLarge is the error reply to a request, job or survey that arrived over
// the size limit (see OversizeFrame): the caller gets ErrTooLarge at once
// instead of resending.
func (s *Server) tooLarge(o oversize) *Frame {
	env := s.replyEnv(0, o.id, o.attempt)
	var flags uint64
	switch o.kind {
	case wire.KindJob:
		env.Kind, flags = wire.KindAck, wire.FlagNack
	case wire.KindSurvey:
		env.Kind, env.From = wire.KindResponse, s.so.Settings.Name
	default:
		env.Kind = wire.KindReply
	}
	err := spmesh.Errorf(spmesh.CodeTooLarge, "spmesh: message too large: %d bytes, the receiver's limit is %d", o.size, s.so.Settings.MaxMsgSize)
	return s.Reply(&env, nil, err, flags)
}

// replyEnv is the envelope of a reply of kind k to request id: it echoes
// the id and attempt, and announces the credit and, with ReportLoad, the
// handlers running (the one replying has returned: not counted).
func (s *Server) replyEnv(k wire.Kind, id wire.ID, attempt uint32) wire.Msg {
	env := wire.Msg{Kind: k, ID: id, Attempt: attempt, Credit: s.Credit}
	if s.ReportLoad {
		env.InFlight = uint32(min(max(s.InFlight.Load(), 0), 1<<32-1))
	}
	return env
}

// EnvelopeHandler serves one request decoded by [Server.ServeEnvelope]:
// env is its envelope (Body aliases the frame: valid until it returns;
// given by value, so that the decoded envelope stays on the server's
// stack). It returns the reply value (encoded with the codec), the reply's
// headers, and the handler's error.
type EnvelopeHandler func(ctx context.Context, env wire.Msg) (v any, h spmesh.Header, err error)

// ServeEnvelope answers one enveloped request frame m of f's flavour,
// the serving half shared by reqrep's Replier and the pipeline's Worker.
// Without calling h it answers with an error (flagged with f.ErrFlags) a
// frame over the size limit (code -2: transports that do not refuse it on
// receipt, inproc), one that does not decode or is not f.Request (code -3,
// counted in DecodeErrors), and one whose deadline has passed (counted in
// Dropped). Otherwise h runs in a context that ends at the sender's
// deadline or at Close, in the tracer's server span, with panics recovered
// (code -1); its error is counted in HandlerErrors. Every reply echoes the id and
// attempt and announces the credit (see replyEnv).
func (s *Server) ServeEnvelope(base context.Context, m *Frame, f Frames, h EnvelopeHandler) *Frame {
	var env wire.Msg
	err := wire.Decode(m.Body, &env)
	if max := s.so.Settings.MaxMsgSize; len(m.Body) > max {
		s.so.C.TooLarge.Add(1)
		s.so.C.Drop(1, &s.so.C.DroppedTooLarge)
		renv := s.replyEnv(f.Reply, env.ID, env.Attempt)
		return s.Reply(&renv, nil,
			spmesh.Errorf(spmesh.CodeTooLarge, "spmesh: message too large: %d bytes, the receiver's limit is %d", len(m.Body), max), f.ErrFlags)
	}
	if err != nil || env.Kind != f.Request {
		s.so.C.DecodeErrors.Add(1)
		if err == nil {
			err = fmt.Errorf("%w: got a %d frame, want a %s (%d)", spmesh.ErrDecode, env.Kind, f.Op(), f.Request)
		}
		renv := s.replyEnv(f.Reply, env.ID, 0)
		return s.Reply(&renv, nil, err, f.ErrFlags)
	}
	s.so.C.Received.Add(1)
	renv := s.replyEnv(f.Reply, env.ID, env.Attempt)
	if env.Deadline != 0 && time.Now().UnixNano() >= env.Deadline {
		// Abandoned before it was taken: don't do the work.
		s.so.C.Drop(1, &s.so.C.DroppedExpired)
		return s.Reply(&renv, nil, fmt.Errorf("spmesh: %s expired before it was handled: %w", f.Op(), context.DeadlineExceeded), f.ErrFlags)
	}
	ctx, cancel := s.HandlerContext(base, env.Deadline)
	hctx, end := s.so.Settings.TraceReceive(ctx, f.Op(), s.so.Settings.Service, env.Header)
	var rh spmesh.Header
	v, err := s.Call(f.Op(), env.ID, func() (v any, err error) {
		v, rh, err = h(hctx, env)
		return v, err
	})
	end(err)
	cancel()
	if err != nil {
		s.Errors.Add(1)
	}
	if s.ReportLoad { // the handler has returned: counted no more
		renv.InFlight = uint32(min(max(s.InFlight.Load(), 0), 1<<32-1))
	}
	renv.Header = rh
	return s.Reply(&renv, v, err, f.ErrFlags)
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
// its stack, the server keeps serving). what ("request", "survey") and id
// identify the call in the log.
func (s *Server) Call(what string, id spmesh.ID, f func() (any, error)) (v any, err error) {
	s.InFlight.Add(1)
	defer func() {
		s.InFlight.Add(-1)
		if p := recover(); p != nil {
			s.Panics.Add(1)
			s.so.Settings.Logger.Error("spmesh: handler panic recovered", "call", what, logx.ID, id, "panic", p, "stack", string(debug.Stack()))
			v, err = nil, spmesh.Errorf(spmesh.CodePanic, "panic: %v", p)
		}
	}()
	return f()
}

// Reply encodes the reply env with v as its body, or, when herr is non-nil
// or v fails to encode, as an error reply carrying herr's message and code
// and errFlags.
func (s *Server) Reply(env *wire.Msg, v any, herr error, errFlags uint64) *Frame {
	env.Time = time.Now().UnixNano()
	if herr == nil {
		m, err := s.so.Encode(env, v)
		if err == nil {
			return m
		}
		if errors.Is(err, spmesh.ErrTooLarge) {
			// The caller must not resend: say why, with the code that
			// makes its error ErrTooLarge.
			herr = spmesh.Errorf(spmesh.CodeTooLarge, "spmesh: reply too large: %v", err)
		} else {
			herr = fmt.Errorf("spmesh: encode reply: %w", err)
		}
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
	case errors.Is(err, spmesh.ErrDecode):
		// Any codec's decode failure, so that the caller's error matches
		// spmesh.ErrDecode whatever codec the handler used.
		env.Code = spmesh.CodeDecode
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
	s.so.C.Draining.Store(true)
	for _, w := range s.workers {
		if w.state.CompareAndSwap(idle, stopped) {
			w.mc.Close()
		}
	}
	done := s.workersEnded()
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
	return err
}

// workersEnded returns a channel closed once every worker has returned.
func (s *Server) workersEnded() <-chan struct{} {
	s.endOnce.Do(func() {
		go func() {
			s.wg.Wait()
			close(s.ended)
		}()
	})
	return s.ended
}

// Close closes at once: the socket first (a handler ending because of the
// cancel must not get its reply out, so that the sender resends), then the
// handlers' contexts; it returns once the handlers have returned, or after
// HandlerGrace: handlers still running then (they ignore their context)
// are counted in Abandoned and logged, and go on running; their replies
// are never sent. It is idempotent.
func (s *Server) Close() error {
	err := s.so.Close()
	first := false
	s.once.Do(func() {
		first = true
		s.cancel()
	})
	if !first {
		return err // the first Close waits
	}
	t := time.NewTimer(HandlerGrace)
	defer t.Stop()
	select {
	case <-s.workersEnded():
	case <-t.C:
		if n := s.InFlight.Load(); n > 0 {
			s.Abandoned.Add(uint64(n))
			s.so.Settings.Logger.Error("spmesh: closed with handlers still running: they ignore their context",
				"handlers", n, "waited", HandlerGrace)
		}
	}
	return err
}
