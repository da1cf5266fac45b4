package sock

import "go.nanomsg.org/mangos/v3"

// Frame is one SP message as the pattern packages see it: Body is the
// frame's bytes (the envelope, or a bare frame), Header the SP header the
// protocol keeps (request ids, survey ids, backtrace). It is mangos'
// message under spmesh's own name: the conversion costs nothing, so a
// frame passes the boundary without a copy or an allocation, and no
// package other than sock needs mangos to hold one.
//
// A frame is owned by whoever holds it: Send and the socket's other
// senders take it (freed by the transport once written, or on failure),
// a received frame belongs to its receiver, who calls Free when done with
// Body (or gives it on). The buffer comes from mangos' pool.
type Frame mangos.Message

// NewFrame returns a frame whose Body has length size, from the pool.
func NewFrame(size int) *Frame { return (*Frame)(mangos.NewMessage(size)) }

// Free returns the frame's buffer to the pool. Body must not be used after.
func (f *Frame) Free() { (*mangos.Message)(f).Free() }

// From is the remote address of the connection the frame arrived on (its
// URL when the transport has none), "" for a frame not received.
func (f *Frame) From() string { return pipeAddr(f.Pipe) }

// msg is f as mangos knows it.
func (f *Frame) msg() *mangos.Message { return (*mangos.Message)(f) }

// frame is m as the pattern packages know it.
func frame(m *mangos.Message) *Frame { return (*Frame)(m) }
