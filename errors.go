package spmesh

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by spmesh wrap one of these where one
// applies, so callers test them with errors.Is. Errors of the underlying
// transport (mangos) never leak: they are translated to these.
var (
	// ErrClosed is returned by every call on a socket, node or stream after Close.
	ErrClosed = errors.New("spmesh: closed")
	// ErrNoPeers means there is nobody to talk to: no replier, worker or
	// puller is connected (like NATS's "no responders").
	ErrNoPeers = errors.New("spmesh: no peers")
	// ErrTooLarge means a message exceeds the configured maximum size.
	ErrTooLarge = errors.New("spmesh: message too large")
	// ErrInvalidOption wraps every rejected option value.
	ErrInvalidOption = errors.New("spmesh: invalid option")
	// ErrDecode means a frame or a payload could not be decoded.
	ErrDecode = errors.New("spmesh: decode error")
	// ErrInvalidTopic means a topic or subscription pattern is malformed.
	ErrInvalidTopic = errors.New("spmesh: invalid topic")
	// ErrTimeout means a per-attempt or survey timer ran out while the
	// caller's context was still live.
	ErrTimeout = errors.New("spmesh: timeout")
)

// RemoteError is an error returned by a remote handler (a replier, worker or
// respondent), carried across the wire. Inspect it with errors.As:
//
//	var re *spmesh.RemoteError
//	if errors.As(err, &re) { log.Print(re.Code, re.Message) }
type RemoteError struct {
	// Code is an application-defined code; 0 when the handler gave none.
	// [CodePanic] marks a recovered handler panic.
	Code int
	// Message is the handler error's text.
	Message string
}

// Codes that spmesh itself puts in [RemoteError.Code]. Application codes
// should be positive.
const (
	// CodePanic is the code of a handler that panicked.
	CodePanic = -1
	// CodeTooLarge is the code of a message the remote side refused for its
	// size; errors.Is(err, ErrTooLarge) holds for it, and callers do not
	// resend it.
	CodeTooLarge = -2
	// CodeDecode is the code of a message the remote side could not decode;
	// errors.Is(err, ErrDecode) holds for it.
	CodeDecode = -3
)

// Is makes errors.Is(err, ErrTooLarge) and errors.Is(err, ErrDecode) hold for
// remote errors carrying [CodeTooLarge] and [CodeDecode].
func (e *RemoteError) Is(target error) bool {
	switch e.Code {
	case CodeTooLarge:
		return target == ErrTooLarge
	case CodeDecode:
		return target == ErrDecode
	}
	return false
}

// Error implements error.
func (e *RemoteError) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("spmesh: remote error (code %d): %s", e.Code, e.Message)
	}
	return "spmesh: remote error: " + e.Message
}

// Coder is implemented by handler errors that carry an application code; the
// code travels to the caller in [RemoteError.Code].
type Coder interface {
	error
	Code() int
}

// Errorf returns an error with an application code for a handler to return;
// the caller receives it as a [*RemoteError] with that code.
func Errorf(code int, format string, args ...any) error {
	return &codedError{code: code, msg: fmt.Sprintf(format, args...)}
}

type codedError struct {
	code int
	msg  string
}

func (e *codedError) Error() string { return e.msg }
func (e *codedError) Code() int     { return e.code }
