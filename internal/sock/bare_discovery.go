package sock

import "github.com/spmesh/spmesh"

// Bare frames and discovery (issue 19). A socket opened with Wiring.Bare
// advertises its endpoints with spmesh.Endpoint.Bare set; a connector
// dials only the endpoints whose framing matches its own: an enveloped
// peer would take a bare frame for a malformed envelope (a decode error),
// and a bare one would hand the application the envelope's bytes. A
// mismatched endpoint is refused like one the transport policy refuses:
// counted in Stats.EndpointsRefused, recorded as LastError (so a caller
// that reaches nobody learns why) and logged once while it stays
// advertised.
//
// A pattern wires it with one field: sock.Wiring{..., Bare: c.bare}.

// framingMismatch says why ep must not be dialed by a socket whose framing
// is bare (or not), or "" when the framings match.
func framingMismatch(ep spmesh.Endpoint, bare bool) string {
	switch {
	case ep.Bare == bare:
		return ""
	case ep.Bare:
		return "bare endpoint (it speaks bare SP frames, WithBareFrames); this socket speaks spmesh envelopes"
	}
	return "enveloped endpoint (it speaks spmesh envelopes); this socket speaks bare frames (WithBareFrames)"
}
