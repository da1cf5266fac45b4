package spmesh

import "fmt"

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
