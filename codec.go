package spmesh

import (
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// Codec turns Go values into message bodies and back.
type Codec interface {
	// Name identifies the codec (e.g. "msgpack", "raw").
	Name() string
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer. It must not keep data.
	Unmarshal(data []byte, v any) error
}

// AppendCodec is implemented by codecs that can encode straight into a
// caller's buffer; spmesh uses it on the send path to avoid a copy and an
// allocation per message.
type AppendCodec interface {
	Codec
	// AppendMarshal appends the encoding of v to dst.
	AppendMarshal(dst []byte, v any) ([]byte, error)
}

// Msgpack is the default codec: github.com/vmihailenco/msgpack/v5 with its
// default settings (struct fields by name, `msgpack` tags honoured).
var Msgpack Codec = msgpackCodec{}

// Raw is the codec for callers who bring their own encoding. Marshal accepts
// []byte, string and nil; Unmarshal accepts *[]byte (a copy) and *string.
var Raw Codec = rawCodec{}

type msgpackCodec struct{}

func (msgpackCodec) Name() string { return "msgpack" }

func (msgpackCodec) Marshal(v any) ([]byte, error) { return msgpack.Marshal(v) }

func (msgpackCodec) Unmarshal(data []byte, v any) error {
	if err := msgpack.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: msgpack: %v", ErrDecode, err)
	}
	return nil
}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// WriteByte spares msgpack its fallback, which allocates a byte slice per
// call.
func (w *appendWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

type pooledEncoder struct {
	w   appendWriter
	enc *msgpack.Encoder
}

var encPool = sync.Pool{New: func() any {
	e := &pooledEncoder{}
	e.enc = msgpack.NewEncoder(&e.w)
	return e
}}

func (msgpackCodec) AppendMarshal(dst []byte, v any) ([]byte, error) {
	e := encPool.Get().(*pooledEncoder)
	e.w.b = dst
	err := e.enc.Encode(v)
	out := e.w.b
	e.w.b = nil
	encPool.Put(e)
	return out, err
}

type rawCodec struct{}

func (rawCodec) Name() string { return "raw" }

func (c rawCodec) Marshal(v any) ([]byte, error) { return c.AppendMarshal(nil, v) }

func (rawCodec) AppendMarshal(dst []byte, v any) ([]byte, error) {
	switch b := v.(type) {
	case []byte:
		return append(dst, b...), nil
	case string:
		return append(dst, b...), nil
	case nil:
		return dst, nil
	default:
		return dst, fmt.Errorf("spmesh: raw codec: cannot marshal %T (want []byte or string)", v)
	}
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	switch p := v.(type) {
	case *[]byte:
		*p = append((*p)[:0], data...)
	case *string:
		*p = string(data)
	default:
		return fmt.Errorf("%w: raw codec: cannot unmarshal into %T (want *[]byte or *string)", ErrDecode, v)
	}
	return nil
}

// AppendMarshal encodes v with c, appending to dst; it uses
// [AppendCodec.AppendMarshal] when c has it.
func AppendMarshal(c Codec, dst []byte, v any) ([]byte, error) {
	if ac, ok := c.(AppendCodec); ok {
		return ac.AppendMarshal(dst, v)
	}
	b, err := c.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}
