package survey

import (
	"context"
	"errors"
	"fmt"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
)

// Bare frames (WithBareFrames): the body alone, no envelope; the survey id
// is in the SP header, where mangos puts it.

var (
	errBareHeaders = fmt.Errorf("%w: headers on a bare surveyor: bare frames carry none (WithBareFrames)", spmesh.ErrInvalidOption)
	errBareExpect  = errors.New("bare answers carry no respondent name to expect (WithBareFrames)")
)

// serveBare answers one bare survey: the handler gets the body as is, and
// its answer is sent as its encoded bytes alone. A failed, panicked or
// declined handler sends no answer.
func (r *Respondent) serveBare(base context.Context, m *sock.Frame) *sock.Frame {
	if max := r.so.Settings.MaxMsgSize; len(m.Body) > max {
		r.so.C.TooLarge.Add(1)
		r.so.C.Drop(1, &r.so.C.DroppedTooLarge)
		return nil
	}
	r.so.C.Received.Add(1)
	q := &Question{Data: m.Body, codec: r.codec}
	v, err := r.srv.Call("survey", q.ID, func() (any, error) { return r.h.ServeSurvey(base, q) })
	if errors.Is(err, ErrDeclined) {
		r.declined.Add(1)
		r.so.Settings.Logger.Debug("spmesh: bare survey declined, no answer sent")
		return nil
	}
	if err == nil {
		var out *sock.Frame
		if out, err = r.so.Encode(nil, v); err == nil {
			return out
		}
	}
	r.srv.Errors.Add(1)
	r.so.Settings.Logger.Warn("spmesh: bare survey failed, no answer sent", "err", err)
	return nil
}

// bareResponse is the Response for a bare answer m: its body, from the
// connection's address.
func (s *Surveyor) bareResponse(m *sock.Frame) *Response {
	return &Response{From: m.From(), Data: m.Body, codec: s.codec}
}

// checkBare refuses what a bare survey cannot carry.
func checkBare(c *call) error {
	if len(c.header) > 0 {
		return errBareHeaders
	}
	if c.expectCall {
		return sock.Invalid("WithExpect: %v", errBareExpect)
	}
	return nil
}
