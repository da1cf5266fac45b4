package spmesh

import (
	"errors"
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// LimitAppendCodec is implemented by codecs that can stop encoding as soon
// as the output passes a size, so that a value far over the message size
// limit is refused without being encoded in full. [Msgpack] implements it.
type LimitAppendCodec interface {
	AppendCodec
	// AppendMarshalLimit is AppendMarshal that fails with an error wrapping
	// [ErrTooLarge] once dst would grow past limit bytes (dst's own length
	// included).
	AppendMarshalLimit(dst []byte, v any, limit int) ([]byte, error)
}

// AppendMarshalLimit encodes v with c, appending to dst, and fails with an
// error wrapping [ErrTooLarge] when the result would pass limit bytes: as
// soon as it does when c is a [LimitAppendCodec], else after encoding.
func AppendMarshalLimit(c Codec, dst []byte, v any, limit int) ([]byte, error) {
	if lc, ok := c.(LimitAppendCodec); ok {
		return lc.AppendMarshalLimit(dst, v, limit)
	}
	b, err := AppendMarshal(c, dst, v)
	if err == nil && len(b) > limit {
		return b, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), limit)
	}
	return b, err
}

var errLimit = errors.New("limit")

// limitWriter appends to b up to limit bytes; a write past it fails (and
// ends the encoding) without copying anything.
type limitWriter struct {
	b     []byte
	limit int
	over  int // size the failed write would have reached
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if len(w.b)+len(p) > w.limit {
		w.over = len(w.b) + len(p)
		return 0, errLimit
	}
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *limitWriter) WriteByte(c byte) error {
	if len(w.b) >= w.limit {
		w.over = len(w.b) + 1
		return errLimit
	}
	w.b = append(w.b, c)
	return nil
}

// The encoder has msgpack's default settings, as the one of AppendMarshal:
// TestAppendMarshalLimitSameBytes keeps the two in step.
type limitEncoder struct {
	w   limitWriter
	enc *msgpack.Encoder
}

var limitPool = sync.Pool{New: func() any {
	e := &limitEncoder{}
	e.enc = msgpack.NewEncoder(&e.w)
	return e
}}

// AppendMarshalLimit implements [LimitAppendCodec].
func (msgpackCodec) AppendMarshalLimit(dst []byte, v any, limit int) ([]byte, error) {
	e := limitPool.Get().(*limitEncoder)
	e.w = limitWriter{b: dst, limit: limit}
	err := e.enc.Encode(v)
	out, over := e.w.b, e.w.over
	e.w = limitWriter{}
	limitPool.Put(e)
	if errors.Is(err, errLimit) {
		return dst, fmt.Errorf("%w: over %d bytes (at least %d), limit %d", ErrTooLarge, limit, over, limit)
	}
	return out, err
}

// AppendMarshalLimit implements [LimitAppendCodec].
func (c rawCodec) AppendMarshalLimit(dst []byte, v any, limit int) ([]byte, error) {
	n := 0
	switch b := v.(type) {
	case []byte:
		n = len(b)
	case string:
		n = len(b)
	}
	if len(dst)+n > limit {
		return dst, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(dst)+n, limit)
	}
	return c.AppendMarshal(dst, v)
}
