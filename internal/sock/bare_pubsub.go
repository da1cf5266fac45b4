package sock

import (
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
	return so.encode(c, &bareEnv, prefix, v)
}
