package sock

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/wire"
	"go.nanomsg.org/mangos/v3"
)

// A frame over the receive limit from a peer with a reply channel is read
// and discarded by the transport, which keeps its first bytes (the prefix)
// and calls OversizeFrame. What the prefix tells, the protocol allows to
// answer:
//
//   - a request or a job (from a REQ peer) and a survey (from a SURVEYOR
//     peer) become a marker frame that the serving Server answers itself,
//     with an error reply carrying spmesh.CodeTooLarge, without calling the
//     handler: the caller gets ErrTooLarge at once and does not resend;
//   - a reply or an ack (from a REP peer) becomes an error reply carrying
//     spmesh.CodeTooLarge, so that the waiting call fails at once instead
//     of resending a request whose answer can never fit;
//   - a survey answer (from a RESPONDENT peer) becomes an error answer of
//     that respondent carrying spmesh.CodeTooLarge (its name, when the
//     prefix holds it), so the surveyor sees why it did not get the answer.
//
// A prefix that does not hold a valid SP header followed by the start of
// an envelope of the expected kind with its id is dropped (nil).

// maxHops is how many 4-byte words an SP REQ or SURVEYOR header may hold
// (mangos' default TTL): the last one, the request or survey id, has its
// high bit set; the others are the backtrace of devices in between.
const maxHops = 8

// markerMagic starts an oversize marker: a first byte of 0 is neither a
// topic byte nor a version, so no envelope starts that way.
var markerMagic = [5]byte{0, 'S', 'P', 'M', 'X'}

// markerNonce makes markers unforgeable by peers: random per process.
var markerNonce = func() (n [8]byte) {
	rand.Read(n[:])
	return n
}()

// marker layout: magic, nonce, kind (1), id (16), attempt (4), size (8).
const markerLen = len(markerMagic) + len(markerNonce) + 1 + 16 + 4 + 8

// oversize is what a marker says of a refused frame.
type oversize struct {
	kind    wire.Kind
	id      wire.ID
	attempt uint32
	size    uint64
}

// OversizeFrame is called for a received frame over the receive limit from
// a peer of protocol peerProto (an SP protocol number) that has a reply
// channel; prefix holds its first bytes (hostile input: validate before
// use), size its claimed length. The transport already read and discarded
// the frame and counted it (TooLarge, Dropped). A non-nil result is
// delivered to the socket in place of the frame, as if it had come from
// the peer; nil drops the frame.
func (so *Socket) OversizeFrame(peerProto uint16, prefix []byte, size uint64) []byte {
	switch peerProto {
	case mangos.ProtoReq:
		return so.refuseIncoming(prefix, size, maxHops, wire.KindRequest, wire.KindJob)
	case mangos.ProtoSurveyor:
		return so.refuseIncoming(prefix, size, maxHops, wire.KindSurvey, wire.KindSurvey)
	case mangos.ProtoRep:
		return so.refuseAnswer(prefix, size, wire.KindReply, wire.KindAck)
	case mangos.ProtoRespondent:
		return so.refuseAnswer(prefix, size, wire.KindResponse, wire.KindResponse)
	}
	return nil
}

// spHeader returns the length of the SP header at the start of b: up to
// hops 4-byte words, the last with its high bit set; 0 if there is none.
func spHeader(b []byte, hops int) int {
	for i := 0; i < hops && 4*i+4 <= len(b); i++ {
		if b[4*i]&0x80 != 0 {
			return 4*i + 4
		}
	}
	return 0
}

// peekEnvelope reads the start of an envelope (a truncated frame) into env
// and reports whether it is of kind a or b and carries an id. The fields
// after the prefix's end are left zero.
func peekEnvelope(b []byte, env *wire.Msg, a, k wire.Kind) bool {
	// Decode fails on a truncated frame but fills the fields it read before
	// the cut: kind first, then the header keys in the order spmesh writes
	// them (id first). Only those are used.
	_ = wire.Decode(b, env)
	return (env.Kind == a || env.Kind == k) && env.ID != (wire.ID{})
}

// refuseIncoming turns the prefix of a refused request, job or survey into
// the marker its Server answers (see Server.tooLarge).
func (so *Socket) refuseIncoming(prefix []byte, size uint64, hops int, a, b wire.Kind) []byte {
	n := spHeader(prefix, hops)
	var env wire.Msg
	if n == 0 || !peekEnvelope(prefix[n:], &env, a, b) {
		return nil
	}
	out := make([]byte, 0, n+markerLen)
	out = append(out, prefix[:n]...)
	out = append(out, markerMagic[:]...)
	out = append(out, markerNonce[:]...)
	out = append(out, byte(env.Kind))
	out = append(out, env.ID[:]...)
	out = binary.BigEndian.AppendUint32(out, env.Attempt)
	out = binary.BigEndian.AppendUint64(out, size)
	return out
}

// oversized reports whether body (an SP message body, its header already
// taken off) is a marker made by refuseIncoming, and what it says.
func (so *Socket) oversized(body []byte) (oversize, bool) {
	if len(body) != markerLen || body[0] != 0 {
		return oversize{}, false // the common case: one comparison
	}
	b := body
	if !bytes.HasPrefix(b, markerMagic[:]) || !bytes.Equal(b[len(markerMagic):len(markerMagic)+len(markerNonce)], markerNonce[:]) {
		return oversize{}, false
	}
	b = b[len(markerMagic)+len(markerNonce):]
	var o oversize
	o.kind = wire.Kind(b[0])
	copy(o.id[:], b[1:17])
	o.attempt = binary.BigEndian.Uint32(b[17:21])
	o.size = binary.BigEndian.Uint64(b[21:29])
	return o, true
}

// answerTooLarge starts the error text of a reply or answer that this
// socket refused on receipt (as opposed to a refusal by the remote side).
const answerTooLarge = "spmesh: answer too large for this receiver"

// refuseAnswer turns the prefix of a refused reply, ack or survey answer
// into an error answer carrying spmesh.CodeTooLarge, for the call waiting
// for it.
func (so *Socket) refuseAnswer(prefix []byte, size uint64, a, b wire.Kind) []byte {
	n := spHeader(prefix, 1)
	var env wire.Msg
	if n == 0 || !peekEnvelope(prefix[n:], &env, a, b) {
		return nil
	}
	out := wire.Msg{Kind: env.Kind, ID: env.ID, Attempt: env.Attempt, From: env.From, Code: spmesh.CodeTooLarge,
		Err: fmt.Sprintf("%s: %d bytes, limit %d", answerTooLarge, size, so.Settings.MaxMsgSize)}
	if env.Kind == wire.KindAck {
		out.Flags = wire.FlagNack
	}
	if len(out.From) > 256 {
		out.From = out.From[:256]
	}
	return wire.AppendHeader(append(make([]byte, 0, n+128+len(out.From)), prefix[:n]...), &out)
}

// RefusedOnReceipt reports whether a reply env is the error that this
// socket made of a reply too large for it (see OversizeFrame), rather than
// a refusal by the remote side: the former was counted in TooLarge on
// receipt already.
func RefusedOnReceipt(env *wire.Msg) bool {
	return env.Code == spmesh.CodeTooLarge && strings.HasPrefix(env.Err, answerTooLarge)
}
