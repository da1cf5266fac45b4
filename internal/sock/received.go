package sock

import (
	"fmt"

	"github.com/spmesh/spmesh"
)

// The helpers below serve the values the pattern packages hand to users
// (Message, Request, Reply, Question, Job, DeadLetter): one way to decode
// their Data and to set a reply header, whatever the type.

// NoValue is the error of Decode on a nil or zero received value of the
// type named typ ("Message"): it wraps spmesh.ErrDecode; never a panic.
func NoValue(typ string) error {
	return fmt.Errorf("%w: a nil or zero %s (only a socket makes one that decodes)", spmesh.ErrDecode, typ)
}

// DecodeBody decodes data into v (a pointer) with c, the codec the socket
// put in the received value of type typ. A nil c marks a zero value: the
// error is NoValue(typ).
func DecodeBody(c spmesh.Codec, data []byte, v any, typ string) error {
	if c == nil {
		return NoValue(typ)
	}
	return c.Unmarshal(data, v)
}

// SetHeader sets key to value in *h, making the map on first use.
func SetHeader(h *spmesh.Header, key, value string) {
	if *h == nil {
		*h = spmesh.Header{}
	}
	(*h)[key] = value
}
