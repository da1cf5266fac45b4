package survey

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
)

// ErrDeclined is returned by a handler that chooses not to answer a survey
// (say, "no capacity"). The surveyor receives a [Response] with Declined
// set and no value; the respondent counts as having answered. Handlers may
// wrap it.
var ErrDeclined = errors.New("spmesh: survey declined")

// Question is one survey as a [Handler] sees it. It and its Data are valid
// only until the handler returns: copy what must outlive it.
type Question struct {
	// ID is the survey's id; every respondent sees the same one.
	ID spmesh.ID
	// Header holds the headers the surveyor sent ([Surveyor.SurveyHeader]).
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
func (q *Question) Decode(v any) error {
	if q == nil {
		return sock.NoValue("Question")
	}
	return sock.DecodeBody(q.codec, q.Data, v, "Question")
}

// SetReplyHeader sets a header on the answer ([Response.Header]). Call it
// from the handler, before it returns.
func (q *Question) SetReplyHeader(key, value string) {
	sock.SetHeader(&q.reply, key, value)
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
// TypedHandler(nil) is nil, which [NewRespondent] refuses.
func TypedHandler[In, Out any](f func(ctx context.Context, q *Question, in In) (Out, error)) Handler {
	if f == nil {
		return nil // refused by the constructor
	}
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
// surveys (each answered with an error, code [spmesh.CodeDecode], without
// calling the handler).
type RespondentStats struct {
	spmesh.Stats
	InFlight      int    // handlers running
	Declined      uint64 // answers that declined
	HandlerErrors uint64 // handler errors, panics included, and answers that failed to encode
	Panics        uint64 // recovered handler panics
	// Abandoned counts handlers still running when Close stopped waiting
	// for them (they ignored their ctx for [HandlerGrace]).
	Abandoned uint64
}

// HandlerGrace is how long Close waits for running handlers to return once
// their ctx is cancelled; a handler still running then goes on in the
// background, counted in [RespondentStats].Abandoned.
const HandlerGrace = sock.HandlerGrace

// Respondent answers the surveys of every [Surveyor] it is connected to,
// running its [Handler] on up to [WithConcurrency] surveys at once. A
// Respondent is safe for concurrent use.
type Respondent struct {
	so       *sock.Socket
	srv      *sock.Server
	h        Handler
	name     string
	codec    spmesh.Codec
	bare     bool // WithBareFrames (bare.go)
	declined atomic.Uint64
}

// NewRespondent opens a respondent that answers with h. Give it a
// surveyor's address with [WithDial] (or call [Respondent.Dial] later), or
// a registry with [WithDiscovery] to dial every surveyor of a service.
// A nil h (also a nil HandlerFunc) is refused with an error wrapping
// [spmesh.ErrInvalidOption].
func NewRespondent(h Handler, opts ...Option) (*Respondent, error) {
	if sock.NilFunc(h) {
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
	so, err := sock.Open(sock.Respondent, c.sock, sock.Wiring{Watch: spmesh.RoleSurveyor, Announce: spmesh.RoleRespondent, Bare: c.bare})
	if err != nil {
		return nil, err
	}
	r := &Respondent{so: so, h: h, name: c.sock.Name, codec: c.sock.Codec, bare: c.bare}
	if r.srv, err = sock.NewServer(so, c.concurrency, r.serve); err != nil {
		return nil, err
	}
	r.srv.Start()
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

// serve answers one survey frame.
func (r *Respondent) serve(base context.Context, m *sock.Frame) *sock.Frame {
	if r.bare {
		return r.serveBare(base, m)
	}
	var env wire.Msg
	if err := wire.Decode(m.Body, &env); err != nil || env.Kind != wire.KindSurvey {
		// Not a survey (a stock SURVEYOR's raw bytes, say): answered, as
		// the Replier answers a raw request, with an error that says so
		// (code spmesh.CodeDecode), without calling the handler.
		r.so.C.DecodeErrors.Add(1)
		if err == nil {
			err = fmt.Errorf("%w: got a %d frame, want a survey (%d)", spmesh.ErrDecode, env.Kind, wire.KindSurvey)
		}
		r.so.Settings.Logger.Debug("spmesh: bad survey answered with an error", "err", err, "kind", env.Kind)
		return r.srv.Reply(&wire.Msg{Kind: wire.KindResponse, ID: env.ID, From: r.name}, nil, err, 0)
	}
	r.so.C.Received.Add(1)
	q := &Question{ID: env.ID, Header: env.Header, Time: time.Unix(0, env.Time), Data: env.Body, codec: r.codec}
	if env.Deadline > 0 {
		q.Deadline = time.Unix(0, env.Deadline)
	}
	ctx, cancel := r.srv.HandlerContext(base, env.Deadline)
	hctx, end := r.so.Settings.TraceReceive(ctx, spmesh.TraceSurvey, r.so.Settings.Service, env.Header)
	v, herr := r.srv.Call("survey", q.ID, func() (any, error) { return r.h.ServeSurvey(hctx, q) })
	cancel()
	ans := wire.Msg{Kind: wire.KindResponse, ID: env.ID, Header: q.reply, From: r.name}
	switch {
	case errors.Is(herr, ErrDeclined):
		ans.Flags = wire.FlagDeclined
		r.declined.Add(1)
		v, herr = nil, nil
	case herr != nil:
		r.srv.Errors.Add(1)
	}
	end(herr) // a decline is no error
	return r.srv.Reply(&ans, v, herr, 0)
}

// Stats returns the respondent's counters.
func (r *Respondent) Stats() RespondentStats {
	return RespondentStats{
		Stats:         r.so.Stats(),
		InFlight:      int(r.srv.InFlight.Load()),
		Declined:      r.declined.Load(),
		HandlerErrors: r.srv.Errors.Load(),
		Panics:        r.srv.Panics.Load(),

		Abandoned: r.srv.Abandoned.Load(),
	}
}

// Drain stops taking surveys, lets the handlers already running finish and
// send their answers, gives those a moment to reach the wire, then closes.
// If ctx ends first, it closes at once (cancelling the handlers' contexts)
// and returns ctx.Err(). A survey arriving at the very moment Drain starts
// may go unanswered (counted in Stats().Dropped).
func (r *Respondent) Drain(ctx context.Context) error { return r.srv.Drain(ctx) }

// Close closes the respondent at once: handlers' contexts are cancelled,
// answers not yet sent are dropped, and Close waits for running handlers to
// return, at most [HandlerGrace]. It is idempotent.
func (r *Respondent) Close() error { return r.srv.Close() }
