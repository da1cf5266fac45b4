package sock

import (
	"errors"
	"fmt"

	"github.com/spmesh/spmesh"
)

// Bare pub/sub and survey (WithBareFrames): pub/sub frames are a topic
// prefix followed by the body bytes, as NNG and nanomsg PUB/SUB programs
// send them; a bare survey answer is told apart by its connection.

// optQuiet makes a SUB socket (Sub, SubHold) announce nothing; optDrops
// reads how many frames its full receive queue dropped.
const (
	optQuiet = "SPMESH-SUB-QUIET"
	optDrops = "SPMESH-SUB-DROPS"
)

// SubDrops returns how many frames so's SUB protocol dropped from its full
// receive queue (oldest first; Sub only, SubHold waits instead): an
// enveloped subscriber sees them as sequence gaps, a bare one counts them
// with this.
func SubDrops(so *Socket) uint64 {
	v, err := so.m.GetOption(optDrops)
	n, _ := v.(uint64)
	if err != nil {
		return 0
	}
	return n
}

// EncodePrefixed builds a bare frame: prefix followed by v encoded by c,
// with no envelope. The size limit is checked as in EncodeWith (before
// encoding where it is known, else while or after encoding), refusals
// counted in TooLarge.
func (so *Socket) EncodePrefixed(c spmesh.Codec, prefix string, v any) (*Frame, error) {
	max := so.Settings.MaxMsgSize
	if n := len(prefix) + knownSize(c, v); n > max {
		return nil, so.tooLarge(n, max)
	}
	m := NewFrame(min(len(prefix)+sizeHint(&so.lastSize, &bareEnv, v), max+1))
	b := append(m.Body[:0], prefix...)
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
