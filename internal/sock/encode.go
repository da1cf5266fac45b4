package sock

import (
	"fmt"
	"sync/atomic"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/wire"
	"go.nanomsg.org/mangos/v3"
)

// Encode builds the mangos message for env with v encoded by the socket's
// codec as its body. The buffer comes from mangos' pool, sized from the
// socket's previous frame so the body is encoded without growing it. It fails
// with spmesh.ErrTooLarge past the socket's maximum message size.
func (so *Socket) Encode(env *wire.Msg, v any) (*mangos.Message, error) {
	return so.EncodeWith(so.Settings.Codec, env, v)
}

// EncodeWith is Encode with another codec (e.g. raw bytes already encoded).
func (so *Socket) EncodeWith(c spmesh.Codec, env *wire.Msg, v any) (*mangos.Message, error) {
	m := mangos.NewMessage(sizeHint(&so.lastSize, env, v))
	b, err := spmesh.AppendMarshal(c, wire.AppendHeader(m.Body[:0], env), v)
	if err != nil {
		m.Free()
		return nil, fmt.Errorf("spmesh: encode %T: %w", v, err)
	}
	if len(b) > so.Settings.MaxMsgSize {
		m.Free()
		return nil, fmt.Errorf("%w: %d bytes, limit %d", spmesh.ErrTooLarge, len(b), so.Settings.MaxMsgSize)
	}
	so.lastSize.Store(int64(len(b)))
	m.Body = b
	return m, nil
}

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
