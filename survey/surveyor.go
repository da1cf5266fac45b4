package survey

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/logx"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
)

// ErrDone is returned by [Responses.Next] once a survey is over and every
// answer it collected has been taken: its deadline passed, or every
// expected respondent answered. The error returned matches ErrDone with
// errors.Is; when the survey's own deadline ended it, it also matches
// [spmesh.ErrTimeout], and when the caller's context deadline ended it,
// context.DeadlineExceeded.
var ErrDone = errors.New("spmesh: survey done")

// endError is why a survey ended; it matches ErrDone and, per cause, more.
type endError struct {
	msg string
	is  error // a second sentinel it matches, or nil
}

func (e *endError) Error() string { return e.msg }

func (e *endError) Is(target error) bool { return target == ErrDone || e.is != nil && target == e.is }

var (
	endComplete    = &endError{msg: "spmesh: survey done: every expected respondent answered"}
	endTimeout     = &endError{msg: "spmesh: survey done: deadline reached", is: spmesh.ErrTimeout}
	endCtxDeadline = &endError{msg: "spmesh: survey done: context deadline reached", is: context.DeadlineExceeded}
)

// Late answers are counted for a while after a survey ends: for as long as
// the survey lasted, but at least minLate and at most maxLate.
const (
	minLate = time.Second
	maxLate = 10 * time.Second
)

// closeCheck bounds how long a survey's collector (a goroutine and a
// survey context) outlives Responses.Close: the collector waits for
// answers in steps of closeCheck, and stops at the first step after Close.
const closeCheck = 50 * time.Millisecond

// Response is one respondent's answer.
type Response struct {
	// From is the respondent's name (see [WithName]).
	From string
	// Header holds the headers the respondent's handler set
	// ([Question.SetReplyHeader]).
	Header spmesh.Header
	// Time is when the respondent answered, by its clock.
	Time time.Time
	// Declined is true when the respondent's handler returned
	// [ErrDeclined]: it answered "no" and sent no value.
	Declined bool
	// Err is a [*spmesh.RemoteError] when the respondent's handler failed or
	// panicked (Code [spmesh.CodePanic]), nil otherwise.
	Err error
	// Data is the encoded answer; [Response.Decode] turns it into a value.
	Data []byte

	codec spmesh.Codec
}

// Decode decodes the answer into v (a pointer) with the surveyor's codec.
// It returns Err for a failed handler and an error wrapping [ErrDeclined]
// for a declined survey.
func (r *Response) Decode(v any) error {
	if r == nil {
		return fmt.Errorf("%w: no response (a nil Response)", spmesh.ErrDecode)
	}
	if r.Err != nil {
		return r.Err
	}
	if r.Declined {
		return fmt.Errorf("%w: by %q", ErrDeclined, r.From)
	}
	if r.codec == nil {
		return fmt.Errorf("%w: no response (a zero Response)", spmesh.ErrDecode)
	}
	return r.codec.Unmarshal(r.Data, v)
}

// SurveyorStats are a Surveyor's counters. Sent counts surveys, Received
// the answers delivered to [Responses], Dropped every answer that arrived
// and was not delivered: too late (DroppedLate), over a survey's queue
// (DroppedQueueFull), still queued when the Surveyor closed
// (DroppedClosed); and the questions not sent to a respondent whose send
// queue was full (DroppedQueueFull) or whose connection went
// (DroppedClosed).
type SurveyorStats struct {
	spmesh.Stats
	// InFlight is the number of surveys open (started and not ended).
	InFlight int
	// ReplyTime is the distribution of the times from sending a survey
	// to each of its answers (late ones are not in it).
	ReplyTime spmesh.Histogram
}

// Surveyor asks every connected [Respondent] a question and gathers their
// answers until a deadline. Several surveys may run at once; each collects
// only its own answers. A Surveyor is safe for concurrent use.
type Surveyor struct {
	so         *sock.Socket
	codec      spmesh.Codec
	bare       bool // WithBareFrames (bare.go)
	defaults   call
	expectFunc func() []string
	roster     *sock.Roster   // with discovery: the respondents announced
	replyTime  sock.Histogram // survey to answer, answers in time only

	mu     sync.Mutex
	closed bool
	free   []sock.SurveyCtx // idle survey contexts, one per concurrent survey
	wg     sync.WaitGroup   // collectors

	surveys sock.Pending // surveys not ended yet; stopped by Drain
}

// NewSurveyor opens a surveyor. Give it an address with [WithListen] (or
// call [Surveyor.Listen] later) for respondents to dial, or a registry with
// [WithDiscovery]. Options that are also [SurveyOption]s set the defaults
// of every survey.
func NewSurveyor(opts ...Option) (*Surveyor, error) {
	c, err := newConfig(forSurveyor, opts)
	if err != nil {
		return nil, err
	}
	so, err := sock.Open(sock.Surveyor, c.sock, sock.Wiring{Bind: spmesh.RoleSurveyor, Bare: c.bare})
	if err != nil {
		return nil, err
	}
	s := &Surveyor{so: so, codec: c.sock.Codec, bare: c.bare, defaults: c.call, expectFunc: c.expectFunc}
	if reg := c.sock.Registry; reg != nil && s.expectFunc == nil && !s.bare {
		// Respondents announce themselves for the service: expect them.
		if s.roster, err = sock.NewRoster(reg, c.sock.Service, spmesh.RoleRespondent); err != nil {
			so.Close()
			return nil, fmt.Errorf("spmesh: watch respondents of %s: %w", c.sock.Service, err)
		}
		s.expectFunc = s.roster.Names
	}
	return s, nil
}

// Listen listens on addr and returns the bound address (port 0 resolved).
func (s *Surveyor) Listen(addr string) (string, error) { return s.so.Listen(addr) }

// Dial connects to a respondent listening at addr, in the background.
func (s *Surveyor) Dial(addr string) error { return s.so.Dial(addr) }

// Addrs returns the addresses the surveyor listens on.
func (s *Surveyor) Addrs() []string { return s.so.Bound() }

// Survey sends question to every respondent connected now and returns the
// stream of their answers. The survey ends at its deadline (the earlier of
// [WithTimeout] and ctx's deadline), as soon as every expected respondent
// has answered ([WithExpect], [WithExpectFunc]), or when ctx is cancelled.
// With no respondent connected it still runs to its deadline and collects
// nothing. Close the returned [Responses] when done with it.
func (s *Surveyor) Survey(ctx context.Context, question any, opts ...SurveyOption) (*Responses, error) {
	return s.SurveyHeader(ctx, nil, question, opts...)
}

// SurveyHeader is [Surveyor.Survey] with headers that travel with the
// question ([Question.Header]). Each answer carries the headers its
// respondent set ([Question.SetReplyHeader]) in [Response.Header], as a
// reqrep reply does. A bare Surveyor ([WithBareFrames]) carries none:
// non-empty headers fail with an error wrapping [spmesh.ErrInvalidOption].
func (s *Surveyor) SurveyHeader(ctx context.Context, h spmesh.Header, question any, opts ...SurveyOption) (*Responses, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.so.Closed() {
		return nil, spmesh.ErrClosed
	}
	if !s.surveys.Enter() {
		return nil, errDraining
	}
	held := true // the survey's count, until rs holds it
	defer func() {
		if held {
			s.surveys.Done(1)
		}
	}()
	c := s.defaults
	c.expectCall = false
	c.header = h
	for _, o := range opts {
		if o == nil {
			return nil, sock.Invalid("nil survey option")
		}
		if err := o.applySurvey(&c); err != nil {
			return nil, err
		}
	}
	if s.bare {
		if err := checkBare(&c); err != nil {
			return nil, err
		}
	}
	if !c.expectCall && s.expectFunc != nil {
		if names := s.expectFunc(); names != nil {
			c.expect = names
		}
	}

	now := time.Now()
	deadline, timeoutEnd := now.Add(c.timeout), error(endTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, timeoutEnd = d, endCtxDeadline
	}
	late := min(max(deadline.Sub(now), minLate), maxLate)

	h, tend := c.header, noTrace
	if s.so.Settings.Traced() && !s.bare {
		// One client span per survey, ended when the survey ends.
		_, h, tend = s.so.Settings.TraceSend(ctx, spmesh.TraceSurvey, s.so.Settings.Service, c.header)
	}
	env := &wire.Msg{Kind: wire.KindSurvey, ID: s.so.NewID(), Time: now.UnixNano(), Header: h, Deadline: deadline.UnixNano()}
	if s.bare {
		env = nil // the question alone
	}
	m, err := s.so.Encode(env, question) // size checked, before encoding when known
	if err != nil {
		tend(err)
		return nil, err
	}

	rs := newResponses(s, deadline, timeoutEnd, c.expect)
	mc, err := s.acquire() // counts the collector in s.wg
	if err != nil {
		m.Free()
		tend(err)
		return nil, err
	}
	// The protocol's queue only absorbs bursts while collect is
	// descheduled (collect moves answers on into rs at once); what
	// overflows it is counted (DroppedQueueFull), as is what arrives after
	// the survey's context ended (DroppedLate): size it for every answer
	// when the respondents are unknown, for the expected ones and some
	// strays otherwise.
	qlen := s.so.Settings.RecvQueue
	if rs.expected != nil {
		qlen = min(qlen, len(rs.expected)+64)
	}
	if err := mc.Start(m, qlen, time.Until(deadline)+late); err != nil {
		s.release(mc)
		s.wg.Done()
		tend(err)
		return nil, err
	}
	if s.so.Settings.Traced() && !s.bare {
		rs.trace = tend // before anything can end the survey
	}
	rs.counted, held = true, false // counted until the survey ends
	s.so.C.Sent.Add(1)
	if rs.expected != nil && rs.pending == 0 {
		rs.mu.Lock()
		rs.complete = true
		rs.mu.Unlock()
		rs.finish(endComplete)
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				rs.finish(endCtxDeadline)
			} else {
				rs.finish(ctx.Err())
			}
		})
		rs.mu.Lock()
		if rs.ended {
			rs.mu.Unlock()
			stop()
		} else {
			rs.stopCtx = stop
			rs.mu.Unlock()
		}
	}
	go s.collect(mc, rs, deadline.Add(late))
	return rs, nil
}

// acquire takes an idle survey context or opens one, and counts a
// collector in s.wg. Contexts are reused rather than opened per survey.
func (s *Surveyor) acquire() (sock.SurveyCtx, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return sock.SurveyCtx{}, spmesh.ErrClosed
	}
	if n := len(s.free); n > 0 {
		mc := s.free[n-1]
		s.free = s.free[:n-1]
		s.wg.Add(1)
		return mc, nil
	}
	mc, err := s.so.OpenSurvey()
	if err != nil {
		return mc, err
	}
	s.wg.Add(1)
	return mc, nil
}

// release ends mc's survey (whatever it still holds or receives from now
// on is counted as late) and keeps mc for reuse.
func (s *Surveyor) release(mc sock.SurveyCtx) {
	mc.End()
	s.mu.Lock()
	if !s.closed {
		s.free = append(s.free, mc)
	}
	s.mu.Unlock()
}

// collect reads the answers of one survey from its survey context: into
// rs until the survey ends, then, counted as late, until lateUntil. It
// returns the context for reuse at once when every expected respondent
// has answered.
func (s *Surveyor) collect(mc sock.SurveyCtx, rs *Responses, lateUntil time.Time) {
	defer s.wg.Done()
	var env wire.Msg
	for {
		rs.mu.Lock()
		ended, complete, closed := rs.ended, rs.complete, rs.closed
		rs.mu.Unlock()
		if complete || closed {
			// Complete or closed: nobody takes more answers. The
			// context's survey ends here (release), so that what it
			// holds and what still arrives is counted as late.
			break
		}
		until := rs.deadline
		if ended {
			until = lateUntil
		}
		wait := time.Until(until)
		if wait <= 0 {
			if !ended {
				rs.finish(rs.timeoutEnd)
				continue
			}
			break
		}
		m, err := mc.Recv(min(wait, closeCheck))
		switch {
		case err == nil:
		case sock.IsRecvTimeout(err):
			continue
		case sock.IsClosed(err):
			rs.finish(spmesh.ErrClosed)
			return
		default:
			// The protocol's survey itself expired: nothing more can arrive.
			rs.finish(rs.timeoutEnd)
			s.release(mc)
			return
		}
		if !ended {
			s.replyTime.Observe(time.Since(rs.start))
		}
		if s.bare {
			rs.add(s.bareResponse(m))
			continue
		}
		if err := wire.Decode(m.Body, &env); err != nil || env.Kind != wire.KindResponse {
			s.so.C.DecodeErrors.Add(1)
			if err == nil {
				err = fmt.Errorf("%w: got a %d frame, want an answer (%d)", spmesh.ErrDecode, env.Kind, wire.KindResponse)
			}
			addr := m.From()
			s.so.WarnPeer(addr, "spmesh: discarded bad survey answer", logx.Remote, addr, logx.Err, err)
			m.Free()
			continue
		}
		r := &Response{
			From: env.From, Header: env.Header, Time: time.Unix(0, env.Time),
			Declined: env.Flags&wire.FlagDeclined != 0, Data: env.Body, codec: s.codec,
		}
		if env.Err != "" || env.Code != 0 {
			r.Err = &spmesh.RemoteError{Code: int(env.Code), Message: env.Err}
			if env.Code == spmesh.CodeTooLarge && !sock.RefusedOnReceipt(&env) {
				s.so.C.TooLarge.Add(1) // the respondent refused the question for its size
			}
		}
		rs.add(r)
	}
	s.release(mc)
}

// Stats returns the surveyor's counters.
func (s *Surveyor) Stats() SurveyorStats {
	return SurveyorStats{Stats: s.so.Stats(), InFlight: s.surveys.Len(), ReplyTime: s.replyTime.Snapshot()}
}

// errDraining is Survey's error once Drain was called.
var errDraining = fmt.Errorf("%w: surveyor draining", spmesh.ErrClosed)

// Drain closes the surveyor gracefully: Survey refuses new surveys at once
// (an error wrapping [spmesh.ErrClosed]); the surveys in progress run until
// they end (deadline, every expected respondent answered, ctx cancelled or
// [Responses.Close]); then Drain closes. Their answers stay readable from
// their [Responses] after it returns; answers arriving late are not
// waited for. If ctx ends first, Drain closes at once: the surveys still
// running end with [spmesh.ErrClosed], and Drain returns ctx's error.
// Concurrent calls all wait; once closed (by Close or a Drain), Drain
// returns [spmesh.ErrClosed], as on every socket type.
func (s *Surveyor) Drain(ctx context.Context) error {
	if s.so.Closed() {
		return spmesh.ErrClosed
	}
	s.so.C.Draining.Store(true)
	s.surveys.Stop()
	err := s.surveys.Wait(ctx)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close closes the surveyor at once: running surveys end, and every call on
// it or on its [Responses] returns [spmesh.ErrClosed]. It is idempotent.
func (s *Surveyor) Close() error {
	s.mu.Lock()
	s.closed = true
	s.free = nil
	s.mu.Unlock()
	err := s.so.Close() // ends every survey context: collectors return
	s.wg.Wait()
	if s.roster != nil {
		s.roster.Close()
	}
	return err
}

// Responses is the stream of one survey's answers. Take them with
// [Responses.Next] or [Responses.All]; the stream ends with an error
// matching [ErrDone] when the survey is over. It is safe for concurrent use.
type Responses struct {
	s          *Surveyor
	start      time.Time // when the survey was sent (ReplyTime)
	deadline   time.Time
	timeoutEnd error
	max        int

	mu       sync.Mutex
	buf      []*Response
	head     int
	ended    bool  // no more answers are accepted
	counted  bool  // counted in the surveyor's surveys until it ends
	complete bool  // ended because every expected respondent answered
	closed   bool  // Close was called
	end      error // why it ended
	expected map[string]bool
	pending  int
	stopCtx  func() bool
	trace    func(error) // ends the survey's span (nil without a tracer)

	notify chan struct{} // a token per new answer or the end
}

// noTrace ends the span of an untraced survey.
func noTrace(error) {}

func newResponses(s *Surveyor, deadline time.Time, timeoutEnd error, expect []string) *Responses {
	rs := &Responses{s: s, start: time.Now(), deadline: deadline, timeoutEnd: timeoutEnd, max: s.so.Settings.RecvQueue, notify: make(chan struct{}, 1)}
	if expect != nil {
		rs.expected = make(map[string]bool, len(expect))
		for _, n := range expect {
			if _, dup := rs.expected[n]; n != "" && !dup {
				rs.expected[n] = false
				rs.pending++
			}
		}
	}
	return rs
}

func (rs *Responses) signal() {
	select {
	case rs.notify <- struct{}{}:
	default:
	}
}

// add accepts one answer, or counts it as late or dropped.
func (rs *Responses) add(r *Response) {
	c := &rs.s.so.C
	rs.mu.Lock()
	if rs.ended {
		rs.mu.Unlock()
		c.Drop(1, &c.DroppedLate)
		return
	}
	if len(rs.buf)-rs.head >= rs.max {
		rs.mu.Unlock()
		c.Drop(1, &c.DroppedQueueFull)
		return
	}
	rs.buf = append(rs.buf, r)
	c.Received.Add(1)
	var stop func() bool
	if rs.expected != nil {
		if answered, ok := rs.expected[r.From]; ok && !answered {
			rs.expected[r.From] = true
			rs.pending--
			if rs.pending == 0 {
				rs.complete = true
				stop = rs.endLocked(endComplete)
			}
		}
	}
	rs.mu.Unlock()
	rs.signal()
	if stop != nil {
		stop()
	}
}

// endLocked ends the survey; it returns the context watch to stop.
func (rs *Responses) endLocked(why error) (stop func() bool) {
	if rs.ended {
		return nil
	}
	rs.ended, rs.end = true, why
	if rs.counted {
		rs.counted = false
		rs.s.surveys.Done(1)
	}
	stop, rs.stopCtx = rs.stopCtx, nil
	if rs.trace != nil {
		// A survey that ran to its end ended well; a cancelled one did not.
		var ee *endError
		if errors.As(why, &ee) {
			why = nil
		}
		rs.trace(why)
		rs.trace = nil
	}
	return stop
}

func (rs *Responses) finish(why error) {
	rs.mu.Lock()
	stop := rs.endLocked(why)
	rs.mu.Unlock()
	rs.signal()
	if stop != nil {
		stop()
	}
}

// Next returns the next answer, waiting until one arrives, the survey ends
// (an error matching [ErrDone]) or ctx ends (ctx.Err()). After
// [Surveyor.Close] it returns [spmesh.ErrClosed]; after [Surveyor.Drain],
// the answers of a survey that ended are still returned. Answers that
// arrived before the end are all returned before the end is reported.
func (rs *Responses) Next(ctx context.Context) (*Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for {
		// After Close, nothing; after Drain, what a survey that ended
		// collected (its end error last).
		drained := rs.s.surveys.Stopped()
		if rs.s.so.Closed() && !drained {
			return nil, spmesh.ErrClosed
		}
		rs.mu.Lock()
		if rs.closed || drained && !rs.ended && rs.s.so.Closed() {
			rs.mu.Unlock()
			return nil, spmesh.ErrClosed
		}
		if rs.head < len(rs.buf) {
			r := rs.buf[rs.head]
			rs.buf[rs.head] = nil
			rs.head++
			more := rs.head < len(rs.buf) || rs.ended
			if rs.head == len(rs.buf) {
				rs.buf, rs.head = rs.buf[:0], 0
			}
			rs.mu.Unlock()
			if more {
				rs.signal() // wake another waiting caller, if any
			}
			return r, nil
		}
		if rs.ended {
			end := rs.end
			rs.mu.Unlock()
			rs.signal()
			return nil, end
		}
		rs.mu.Unlock()
		select {
		case <-rs.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// All iterates over the answers until the survey ends or ctx ends. The end
// of the survey ends the loop quietly; any other error (ctx's, or
// [spmesh.ErrClosed]) is yielded once, last.
func (rs *Responses) All(ctx context.Context) iter.Seq2[*Response, error] {
	return func(yield func(*Response, error) bool) {
		for {
			r, err := rs.Next(ctx)
			if errors.Is(err, ErrDone) {
				return
			}
			if !yield(r, err) || err != nil {
				return
			}
		}
	}
}

// Missing returns the expected respondents that have not answered, sorted;
// nil when the survey expects nobody in particular. Called after the end,
// it is the final list of who did not answer.
func (rs *Responses) Missing() []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.expected == nil {
		return nil
	}
	out := []string{}
	for n, answered := range rs.expected {
		if !answered {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Deadline is when the survey stops collecting answers.
func (rs *Responses) Deadline() time.Time { return rs.deadline }

// Close ends the survey early: answers still arriving are counted as late.
// Next then returns [spmesh.ErrClosed]. It is idempotent.
func (rs *Responses) Close() error {
	rs.mu.Lock()
	rs.closed = true
	stop := rs.endLocked(spmesh.ErrClosed)
	rs.buf, rs.head = nil, 0
	rs.mu.Unlock()
	rs.signal()
	if stop != nil {
		stop()
	}
	return nil
}
