package sock

import (
	"time"

	"go.nanomsg.org/mangos/v3"
)

// The options and events the pattern packages need, behind Socket methods
// so that none of them sets a mangos option or sees a mangos pipe. Errors
// are translated (Err).

// Subscribe adds prefix to the topics a Sub or SubHold socket receives
// (announced to its publishers, which filter for it).
func (so *Socket) Subscribe(prefix []byte) error {
	return Err(so.m.SetOption(mangos.OptionSubscribe, prefix))
}

// Unsubscribe removes a prefix that Subscribe added.
func (so *Socket) Unsubscribe(prefix []byte) error {
	return Err(so.m.SetOption(mangos.OptionUnsubscribe, prefix))
}

// Quiet makes so, a socket of protocol Sub or SubHold, send no interest
// frames, like a stock SUB: its publishers then filter nothing for it. A
// bare subscriber needs it, since its publishers may be stock PUBs, and
// NNG's PUB closes a connection on which it receives anything. Call it
// before any connection (from Wiring.Before).
func (so *Socket) Quiet() error { return Err(so.m.SetOption(optQuiet, true)) }

// SetRecvQueue sets how many received frames the protocol holds before the
// application takes them (0: none, each connection hands its frame over
// directly).
func (so *Socket) SetRecvQueue(n int) error {
	return Err(so.m.SetOption(mangos.OptionReadQLen, n))
}

// PipeEvent is a connection event, as OnPipe reports it.
type PipeEvent int

// The connection events.
const (
	PipeAttached PipeEvent = iota + 1 // a connection is established
	PipeDetached                      // a connection is gone
)

// PipeFunc is called on a connection event, on the transport's goroutine:
// it must not block.
type PipeFunc func(PipeEvent)

// OnPipe adds f, called on every connection attached to or detached from
// so (after Peers counts it).
func (so *Socket) OnPipe(f PipeFunc) {
	so.onPipe(func(ev mangos.PipeEvent, _ mangos.Pipe) {
		switch ev {
		case mangos.PipeEventAttached:
			f(PipeAttached)
		case mangos.PipeEventDetached:
			f(PipeDetached)
		}
	})
}

// SurveyCtx is one survey on a Surveyor socket: its own mangos context and
// survey id, so that several surveys run at once, each receiving only its
// own answers. A new survey sent on a context cancels the previous one,
// so contexts are reused (the mangos surveyor keeps every context it
// opened until the socket closes). The zero value is not usable.
type SurveyCtx struct {
	c  mangos.Context
	so *Socket
}

// OpenSurvey opens a survey context on so, a Surveyor socket.
func (so *Socket) OpenSurvey() (SurveyCtx, error) {
	c, err := so.m.OpenContext()
	if err != nil {
		return SurveyCtx{}, Err(err)
	}
	return SurveyCtx{c, so}, nil
}

// Start sends question f as a new survey on the context, answers to be
// received until expire from now, at most qlen of them queued before
// Recv takes them (what overflows is dropped, uncounted). It takes f,
// whether or not it fails.
func (sc SurveyCtx) Start(f *Frame, qlen int, expire time.Duration) error {
	if err := sc.c.SetOption(mangos.OptionReadQLen, qlen); err != nil {
		f.Free()
		return Err(err)
	}
	if err := sc.c.SetOption(mangos.OptionSurveyTime, expire); err != nil {
		f.Free()
		return Err(err)
	}
	n := len(f.Body) // SendMsg takes f
	if err := sc.c.SendMsg(f.msg()); err != nil {
		return Err(err)
	}
	// mangos' surveyor queues the question for every connection: count
	// it once per respondent connected.
	sc.so.C.BytesSent.Add(uint64(n * sc.so.Peers()))
	return nil
}

// Recv waits at most timeout for the next answer to the context's survey.
// Its error is untranslated: IsRecvTimeout after timeout, IsClosed once
// the socket closed, any other once the survey expired (nothing more can
// arrive).
func (sc SurveyCtx) Recv(timeout time.Duration) (*Frame, error) {
	if err := sc.c.SetOption(mangos.OptionRecvDeadline, timeout); err != nil {
		return nil, err
	}
	m, err := sc.c.RecvMsg()
	if m != nil {
		sc.so.C.BytesReceived.Add(uint64(len(m.Body)))
	}
	return frame(m), err
}
