package reqrep

import (
	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/wire"
)

// frames are the envelope kinds a Requester sends and a Replier answers
// with. They follow the role (withRole): with [spmesh.RoleWorker] the
// requests are pipeline jobs and the replies their acks (wire kinds Job and
// Ack, an error reply flagged as a nack), which is how the pipeline's
// Producer and Worker ride on this package (through internal/layer); every other role speaks plain
// requests and replies. A peer of one flavour therefore refuses the frames
// of the other instead of serving them by mistake.
type frames struct {
	request, reply wire.Kind
	errFlags       uint64 // flags set on an error reply
	bare           bool   // no envelope: bodies are the application bytes (WithBareFrames)
}

func framesFor(c *config) frames {
	if c.role == spmesh.RoleWorker {
		return frames{request: wire.KindJob, reply: wire.KindAck, errFlags: wire.FlagNack}
	}
	return frames{request: wire.KindRequest, reply: wire.KindReply, bare: c.bare}
}

// failed reports whether a reply env carries a handler failure: an error
// text, or the error flags of its flavour (a nack from a peer that sent
// no text).
func (f frames) failed(env *wire.Msg) bool {
	return env.Err != "" || f.errFlags != 0 && env.Flags&f.errFlags != 0
}

// op is the operation the frames carry, for a tracer.
func (f frames) op() string {
	if f.request == wire.KindJob {
		return spmesh.TraceJob
	}
	return spmesh.TraceRequest
}
