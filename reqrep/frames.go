package reqrep

import "github.com/spmesh/spmesh/internal/sock"

// framesFor returns the frames of a Requester or Replier: requests and
// replies, enveloped or bare (WithBareFrames). The pipeline's jobs and acks
// are another flavour (internal/sock's JobFrames): a peer of one refuses
// the frames of the other instead of serving them by mistake.
func framesFor(c *config) sock.Frames {
	f := sock.RequestFrames
	f.Bare = c.bare
	return f
}
