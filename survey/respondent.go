package survey

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
	"go.nanomsg.org/mangos/v3"
)

// ErrDeclined is returned by a handler that chooses not to answer a survey
// (say, "no capacity"). The surveyor receives a [Response] with Declined
// set and no value; the respondent counts as having answered. Handlers may
// wrap it.
var ErrDeclined = errors.New("spmesh: survey declined")

// sendTimeout bounds how long a worker waits to queue an answer to a
// surveyor whose connection is not draining (a stuck or hostile peer): past
// it the answer is dropped, and the worker serves on.
const sendTimeout = time.Second

// drainLinger is how long Drain leaves the last answers to reach the wire
// before closing the connections (bounded by Drain's ctx).
const drainLinger = 50 * time.Millisecond

// Question is one survey as a [Handler] sees it.
type Question struct {
	// ID is the survey's id; every respondent sees the same one.
	ID spmesh.ID
	// Header holds the headers the surveyor sent ([WithHeader]).
	Header spmesh.Header
	// Time is when the survey was sent, by the surveyor's clock.
	Time time.Time
	// Deadline is when the surveyor stops collecting answers, by its clock;
	// the handler's ctx carries it too. Answers sent later are counted by
	// the surveyor as late and not delivered.
	Deadline time.Time
	// Data is the encoded question; [Question.Decode] turns it into a value.
	Data []byte

	codec spmesh.Codec
	reply spmesh.Header
}

// Decode decodes the question into v (a pointer) with the respondent's codec.
func (q *Question) Decode(v any) error { return q.codec.Unmarshal(q.Data, v) }

// SetReplyHeader sets a header on the answer ([Response.Header]). Call it
// from the handler, before it returns.
func (q *Question) SetReplyHeader(key, value string) {
	if q.reply == nil {
		q.reply = spmesh.Header{}
	}
	q.reply[key] = value
}

// Handler answers surveys. ServeSurvey returns the answer (encoded with the
// codec), or an error: [ErrDeclined] to decline, any other error to report
// a failure, which the surveyor receives as a [*spmesh.RemoteError] (with
// the code of a [spmesh.Coder] error). A panic is recovered, logged and
// reported the same way, with code [spmesh.CodePanic]; the respondent keeps
// serving. ctx ends at the survey's deadline or when the respondent closes.
type Handler interface {
	ServeSurvey(ctx context.Context, q *Question) (answer any, err error)
}

// HandlerFunc adapts a function to a [Handler].
type HandlerFunc func(ctx context.Context, q *Question) (any, error)

// ServeSurvey calls f.
func (f HandlerFunc) ServeSurvey(ctx context.Context, q *Question) (any, error) { return f(ctx, q) }

// TypedHandler adapts a function taking a decoded In to a [Handler]. A
// question that does not decode as an In is answered with an error
// wrapping [spmesh.ErrDecode] without calling f.
func TypedHandler[In, Out any](f func(ctx context.Context, q *Question, in In) (Out, error)) Handler {
	return HandlerFunc(func(ctx context.Context, q *Question) (any, error) {
		var in In
		if err := q.Decode(&in); err != nil {
			return nil, err
		}
		return f(ctx, q, in)
	})
}

// RespondentStats are a Respondent's counters. Received counts surveys
// handed to the handler, Sent answers queued for the wire (declines and
// errors included), Dropped surveys taken but not answered (the connection
// closed first, or Drain caught them), DecodeErrors frames that were not
// surveys (never answered).
type RespondentStats struct {
	spmesh.Stats
	InFlight int    // handlers running
	Declined uint64 // answers that declined
	Errors   uint64 // handler errors, panics included, and answers that failed to encode
	Panics   uint64 // recovered handler panics
}

// Respondent answers the surveys of every [Surveyor] it is connected to,
// running its [Handler] on up to [WithConcurrency] surveys at once. A
// Respondent is safe for concurrent use.
type Respondent struct {
	so      *sock.Socket
	h       Handler
	name    string
	codec   spmesh.Codec
	base    context.Context // parent of handler contexts, cancelled by Close
	cancel  context.CancelFunc
	workers []*worker
	wg      sync.WaitGroup

	closeOnce sync.Once
	draining  atomic.Bool
	inflight  atomic.Int64
	declined  atomic.Uint64
	errs      atomic.Uint64
	panics    atomic.Uint64
}

type worker struct {
	mc      mangos.Context
	mu      sync.Mutex
	busy    bool // between receiving a survey and sending its answer
	stopped bool // Drain closed it or asked it to stop
}

// NewRespondent opens a respondent that answers with h. Give it a
// surveyor's address with [WithDial] (or call [Respondent.Dial] later), or
// a registry with [WithDiscovery] to dial every surveyor of a service.
func NewRespondent(h Handler, opts ...Option) (*Respondent, error) {
	if h == nil {
		return nil, sock.Invalid("nil handler")
	}
	c, err := newConfig(forRespondent, opts)
	if err != nil {
		return nil, err
	}
	if c.sock.Name == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "respondent"
		}
		c.sock.Name = fmt.Sprintf("%s-%08x", host, uint32(sock.RandomUint64()))
	}
	so, err := sock.Open(sock.Respondent, c.sock, sock.Wiring{Watch: spmesh.RoleSurveyor, Announce: spmesh.RoleRespondent})
	if err != nil {
		return nil, err
	}
	r := &Respondent{so: so, h: h, name: c.sock.Name, codec: c.sock.Codec}
	r.base, r.cancel = context.WithCancel(context.Background())
	for range c.concurrency {
		mc, err := so.M.OpenContext()
		if err == nil {
			err = mc.SetOption(mangos.OptionSendDeadline, sendTimeout)
		}
		if err != nil {
			r.Close()
			return nil, sock.Err(err)
		}
		r.workers = append(r.workers, &worker{mc: mc})
	}
	r.wg.Add(len(r.workers))
	for _, w := range r.workers {
		go r.work(w)
	}
	return r, nil
}

// Name is the respondent's name, as surveyors see it in [Response.From].
func (r *Respondent) Name() string { return r.name }

// Listen listens on addr for surveyors to dial, returning the bound address.
func (r *Respondent) Listen(addr string) (string, error) { return r.so.Listen(addr) }

// Dial connects to a surveyor listening at addr, in the background.
func (r *Respondent) Dial(addr string) error { return r.so.Dial(addr) }

// Addrs returns the addresses the respondent listens on.
func (r *Respondent) Addrs() []string { return r.so.Bound() }

func (r *Respondent) work(w *worker) {
	defer r.wg.Done()
	var env wire.Msg
	for {
		m, err := w.mc.RecvMsg()
		if err != nil {
			if !errors.Is(err, mangos.ErrClosed) {
				r.so.Settings.Logger.Warn("spmesh: respondent receive", "err", err)
			}
			return
		}
		w.mu.Lock()
		stopped := w.stopped
		w.busy = !stopped
		w.mu.Unlock()
		if stopped {
			// Drain closed this context as the survey arrived.
			r.so.C.Dropped.Add(1)
			return
		}
		r.serve(w.mc, m, &env)
		w.mu.Lock()
		w.busy = false
		stopped = w.stopped
		w.mu.Unlock()
		if stopped {
			w.mc.Close()
			return
		}
	}
}

// serve answers one survey frame.
func (r *Respondent) serve(mc mangos.Context, m *mangos.Message, env *wire.Msg) {
	if err := wire.Decode(m.Body, env); err != nil || env.Kind != wire.KindSurvey {
		r.so.C.DecodeErrors.Add(1)
		r.so.Settings.Logger.Debug("spmesh: discarded bad survey", "err", err, "kind", env.Kind)
		return
	}
	r.so.C.Received.Add(1)
	q := &Question{ID: env.ID, Header: env.Header, Time: time.Unix(0, env.Time), Data: env.Body, codec: r.codec}
	ctx := r.base
	if env.Deadline > 0 {
		q.Deadline = time.Unix(0, env.Deadline)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, q.Deadline)
		defer cancel()
	}
	r.inflight.Add(1)
	v, herr := r.call(ctx, q)
	r.inflight.Add(-1)

	ans := wire.Msg{Kind: wire.KindResponse, ID: env.ID, Header: q.reply, From: r.name}
	out := mangos.NewMessage(128)
	if herr == nil {
		ans.Time = time.Now().UnixNano()
		out.Body = wire.AppendHeader(out.Body[:0], &ans)
		body, err := spmesh.AppendMarshal(r.codec, out.Body, v)
		switch {
		case err != nil:
			herr = fmt.Errorf("spmesh: encode answer %T: %v", v, err)
		case len(body) > r.so.Settings.MaxMsgSize:
			herr = fmt.Errorf("%w: answer of %d bytes, limit %d", spmesh.ErrTooLarge, len(body), r.so.Settings.MaxMsgSize)
		default:
			out.Body = body
		}
		if herr != nil {
			r.so.Settings.Logger.Warn("spmesh: survey answer not sent", "err", herr)
		}
	}
	if herr != nil {
		ans.Time = time.Now().UnixNano()
		if errors.Is(herr, ErrDeclined) {
			ans.Flags = wire.FlagDeclined
			r.declined.Add(1)
		} else {
			ans.Code, ans.Err = errorCode(herr), herr.Error()
			if ans.Err == "" {
				ans.Err = "error"
			}
			r.errs.Add(1)
		}
		out.Body = wire.AppendHeader(out.Body[:0], &ans)
	}
	if err := mc.SendMsg(out); err != nil {
		out.Free()
		r.so.C.Dropped.Add(1)
		return
	}
	r.so.C.Sent.Add(1)
}

func errorCode(err error) int64 {
	var re *spmesh.RemoteError
	if errors.As(err, &re) {
		return int64(re.Code)
	}
	var c spmesh.Coder
	if errors.As(err, &c) {
		return int64(c.Code())
	}
	return 0
}

// call runs the handler, turning a panic into a remote error.
func (r *Respondent) call(ctx context.Context, q *Question) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.panics.Add(1)
			r.so.Settings.Logger.Error("spmesh: survey handler panicked", "panic", p, "survey", q.ID, "stack", string(debug.Stack()))
			v, err = nil, &spmesh.RemoteError{Code: spmesh.CodePanic, Message: fmt.Sprint("panic: ", p)}
		}
	}()
	return r.h.ServeSurvey(ctx, q)
}

// Stats returns the respondent's counters.
func (r *Respondent) Stats() RespondentStats {
	return RespondentStats{
		Stats:    r.so.Stats(),
		InFlight: int(r.inflight.Load()),
		Declined: r.declined.Load(),
		Errors:   r.errs.Load(),
		Panics:   r.panics.Load(),
	}
}

// Drain stops taking surveys, lets the handlers already running finish and
// send their answers, gives those a moment to reach the wire, then closes.
// If ctx ends first, it closes at once (cancelling the handlers' contexts)
// and returns ctx.Err(). A survey arriving at the very moment Drain starts
// may go unanswered (counted in Stats().Dropped).
func (r *Respondent) Drain(ctx context.Context) error {
	if r.so.Closed() || r.draining.Swap(true) {
		return spmesh.ErrClosed
	}
	for _, w := range r.workers {
		w.mu.Lock()
		w.stopped = true
		if !w.busy {
			w.mc.Close()
		}
		w.mu.Unlock()
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
		t := time.NewTimer(drainLinger)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	case <-ctx.Done():
		err = ctx.Err()
	}
	r.Close()
	<-done
	return err
}

// Close closes the respondent at once: handlers' contexts are cancelled,
// answers not yet sent are dropped, and Close waits for running handlers to
// return. It is idempotent.
func (r *Respondent) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.cancel()
		err = r.so.Close() // closes every mangos context: workers return
		r.wg.Wait()
	})
	return err
}
