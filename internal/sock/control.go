package sock

import (
	"time"

	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol"
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

// SurveyCtx is one survey at a time on a Surveyor socket (spmesh's own
// SURVEYOR protocol, surveyor.go): its own survey id and answer queue, so
// that several surveys run at once, each receiving only its own answers.
// A new survey started on a context ends the previous one, so contexts are
// reused. Recv is called by one goroutine at a time. The zero value is not
// usable.
type SurveyCtx struct {
	c *pollCtx
}

// OpenSurvey opens a survey context on so, a Surveyor socket.
func (so *Socket) OpenSurvey() (SurveyCtx, error) {
	v, err := so.m.GetOption(optPoll)
	p, _ := v.(*Poll)
	if err != nil || p == nil {
		return SurveyCtx{}, Err(protocol.ErrProtoOp)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return SurveyCtx{}, Err(protocol.ErrClosed)
	}
	return SurveyCtx{&pollCtx{p: p, qlen: p.qlen}}, nil
}

// Start sends question f as a new survey on the context (ending the
// context's previous survey), its answers to be received until expire
// from now, at most qlen of them queued before Recv takes them: every
// answer not taken is counted in the socket's Dropped (see Poll). It
// takes f, whether or not it fails.
func (sc SurveyCtx) Start(f *Frame, qlen int, expire time.Duration) error {
	if qlen < 0 {
		f.Free()
		return Err(protocol.ErrBadValue)
	}
	_, err := sc.c.start(f, qlen, expire)
	return Err(err)
}

// End ends the context's survey: answers to it from now on, and those it
// still holds, are dropped and counted as late (DroppedLate).
func (sc SurveyCtx) End() { sc.c.stop() }

// Recv waits at most timeout for the next answer to the context's survey.
// Its error is untranslated: IsRecvTimeout after timeout, IsClosed once
// the socket closed, any other once the survey ended (nothing more can
// arrive).
func (sc SurveyCtx) Recv(timeout time.Duration) (*Frame, error) {
	m, err := sc.c.recv(timeout)
	return frame(m), err
}
