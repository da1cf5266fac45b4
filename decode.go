package spmesh

import "fmt"

// Decoder is a received message that decodes its body with the codec of
// the socket that received it: pubsub.Message, reqrep.Request,
// reqrep.Reply, pipeline.Message, pipeline.Job, pipeline.DeadLetter,
// survey.Question and survey.Response all have this method. A zero or nil
// message returns an error wrapping [ErrDecode]; none panics.
type Decoder interface {
	Decode(v any) error
}

// Decode decodes d's body as a T, with the codec of the socket that
// received it:
//
//	order, err := spmesh.Decode[Order](msg)
//
// A nil d returns an error wrapping [ErrDecode]; so does a body that does
// not decode as a T.
func Decode[T any](d Decoder) (T, error) {
	var v T
	if d == nil {
		return v, fmt.Errorf("%w: nothing to decode (nil)", ErrDecode)
	}
	err := d.Decode(&v)
	return v, err
}
