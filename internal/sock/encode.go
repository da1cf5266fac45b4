package sock

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/wire"
)

// Encode builds the frame for env with v encoded by the socket's
// codec as its body. The buffer comes from mangos' pool, sized from the
// socket's previous frame so the body is encoded without growing it. It fails
// with spmesh.ErrTooLarge past the socket's maximum message size.
func (so *Socket) Encode(env *wire.Msg, v any) (*Frame, error) {
	return so.EncodeWith(so.Settings.Codec, env, v)
}

// EncodeWith is Encode with another codec (e.g. raw bytes already encoded).
//
// The size is checked before encoding where it is known (a []byte or
// string body with spmesh's own codecs, whose encoding of them is never
// shorter), else while encoding with a codec that can stop at the limit
// (spmesh.LimitAppendCodec: msgpack does), else once the encoding ends: a
// body over the limit is never sent, and never encoded much past the limit
// by spmesh's codecs. Refusals are counted in TooLarge. More than
// wire.MaxHeaders user headers fail with spmesh.ErrInvalidOption. A nil
// env makes a bare frame: the encoded body alone, no envelope.
func (so *Socket) EncodeWith(c spmesh.Codec, env *wire.Msg, v any) (*Frame, error) {
	if env == nil {
		env = &bareEnv
	} else if n := len(env.Header); n > wire.MaxHeaders {
		// The receiver would refuse the whole frame: refuse it here, where
		// the caller learns why.
		return nil, fmt.Errorf("%w: %d headers, limit %d", spmesh.ErrInvalidOption, n, wire.MaxHeaders)
	}
	return so.encode(c, env, "", v)
}

// encode builds the frame: env's header (none for bareEnv), then prefix,
// then v encoded by c, within the socket's size limit (see EncodeWith).
func (so *Socket) encode(c spmesh.Codec, env *wire.Msg, prefix string, v any) (*Frame, error) {
	max := so.Settings.MaxMsgSize
	if n := len(prefix) + knownSize(c, v); n > max {
		return nil, so.tooLarge(n, max)
	}
	m := NewFrame(min(len(prefix)+sizeHint(&so.lastSize, env, v), max+1))
	b := m.Body[:0]
	if env != &bareEnv {
		b = wire.AppendHeader(b, env)
	}
	b = append(b, prefix...)
	b, err := spmesh.AppendMarshalLimit(c, b, v, max)
	if err != nil {
		m.Free()
		if errors.Is(err, spmesh.ErrTooLarge) {
			so.C.TooLarge.Add(1)
			return nil, err
		}
		return nil, fmt.Errorf("spmesh: encode %T: %w", v, err)
	}
	so.lastSize.Store(int64(len(b) - len(prefix)))
	m.Body = b
	return m, nil
}

// CheckSize returns the error for a frame of n bytes over the socket's
// limit (counted in TooLarge), or nil.
func (so *Socket) CheckSize(n int) error {
	if max := so.Settings.MaxMsgSize; n > max {
		return so.tooLarge(n, max)
	}
	return nil
}

func (so *Socket) tooLarge(n, max int) error {
	so.C.TooLarge.Add(1)
	return fmt.Errorf("%w: %d bytes, limit %d", spmesh.ErrTooLarge, n, max)
}

// KnownSize is the least size of v encoded by c, when it is known without
// encoding: for a []byte or string body with spmesh's own codecs (msgpack
// adds a header, raw nothing), 0 otherwise (another codec may compress).
func KnownSize(c spmesh.Codec, v any) int { return knownSize(c, v) }

func knownSize(c spmesh.Codec, v any) int {
	if c != spmesh.Msgpack && c != spmesh.Raw {
		return 0
	}
	return BodyLen(v)
}

// BodyLen is the length of a []byte or string body, 0 for any other value:
// the size of its payload before any codec.
func BodyLen(v any) int {
	switch b := v.(type) {
	case []byte:
		return len(b)
	case string:
		return len(b)
	}
	return 0
}

// bareEnv stands for no envelope in EncodeWith (never written).
var bareEnv wire.Msg

func sizeHint(last *atomic.Int64, env *wire.Msg, v any) int {
	n := 64 + len(env.Topic) + len(env.Err) + len(env.From)
	for k, val := range env.Header {
		n += len(k) + len(val) + 4
	}
	switch b := v.(type) {
	case []byte:
		return n + len(b)
	case string:
		return n + len(b)
	}
	return n + int(last.Load())
}
