package sock

import (
	"fmt"

	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/pull"
	"go.nanomsg.org/mangos/v3/protocol/rep"
	"go.nanomsg.org/mangos/v3/protocol/req"
	"go.nanomsg.org/mangos/v3/protocol/respondent"
)

// Proto is a mangos protocol.
type Proto int

// The protocols.
const (
	Pub Proto = iota
	Sub
	Req
	Rep
	Push
	Pull
	Surveyor
	Respondent
	// Dispatcher is spmesh's REQ: same wire protocol as Req, but the
	// socket chooses each request's peer (req.go). Req stays mangos' REQ,
	// for raw use.
	Dispatcher
	// SubHold is SUB whose full receive queue holds the connections back
	// instead of dropping (sub.go): for pub/sub with backpressure.
	SubHold
)

// open opens p's mangos socket; spmesh's own protocols count the bytes
// of the frames they send and receive in c.
func (p Proto) open(c *Counters) (mangos.Socket, error) {
	switch p {
	case Pub:
		return newPubSocket(c), nil // mangos' PUB, counting its drops (pub.go)
	case Sub:
		return newSubSocket(false, c), nil // mangos' SUB, announcing its prefixes (sub.go)
	case Req:
		return req.NewSocket()
	case Rep:
		return rep.NewSocket()
	case Push:
		return newPushSocket(c), nil // round robin over pullers with room (push.go)
	case Pull:
		return pull.NewSocket()
	case Surveyor:
		return newSurveyorSocket(c), nil // counting every answer it discards (surveyor.go)
	case Respondent:
		return respondent.NewSocket()
	case Dispatcher:
		return newReqSocket(c), nil
	case SubHold:
		return newSubSocket(true, c), nil
	}
	return nil, fmt.Errorf("spmesh: unknown protocol %d", p)
}
