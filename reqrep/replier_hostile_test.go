package reqrep_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/hostile"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/sptcp"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/reqrep"
)

// bigReply is the answer to "big": large enough that a peer that never
// reads its replies fills its connection within a few of them.
var bigReply = strings.Repeat("x", 256<<10)

// hostileHandler answers the legit calls ("hi": "ok"; "big": bigReply) and
// decodes anything else into every type of the suite, as typed handlers
// would, before refusing it.
func hostileHandler(_ context.Context, req *reqrep.Request) (any, error) {
	var s string
	if req.Decode(&s) == nil {
		switch s {
		case "hi":
			return "ok", nil
		case "big":
			return bigReply, nil
		}
	}
	hostile.DecodeTypes(req.Decode)
	return nil, errors.New("not a legit request")
}

// TestReplierHostilePeers runs the hostile-peer suite against a Replier
// over real TCP while a legit Requester keeps calling it.
//
// Figures: go test -run TestReplierHostilePeers -v ./reqrep/
func TestReplierHostilePeers(t *testing.T) {
	rp, err := reqrep.NewReplier(reqrep.HandlerFunc(hostileHandler), reqrep.WithListen("tcp://127.0.0.1:0"),
		reqrep.WithSendTimeout(200*time.Millisecond)) // the never-reads attack shows within a second
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	addr := rp.Addrs()[0]
	// The legit requester resends after a second without a reply: a
	// replier drops replies it cannot send in time, and counts on that.
	rq, err := reqrep.NewRequester(reqrep.WithDial(addr), reqrep.WithWaitForReplier(), reqrep.WithAttemptTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer rq.Close()
	tg := hostile.Target{
		Name:      "replier",
		Connect:   func() (*hostile.Conn, error) { return hostile.Dial(addr, hostile.ProtoReq) },
		Kind:      wire.KindRequest,
		ReqHeader: true,
		Legit: func(ctx context.Context) error {
			var got string
			if err := rq.Request(ctx, "hi", &got); err != nil {
				return err
			}
			if got != "ok" {
				return errors.New("got " + got)
			}
			return nil
		},
		Stats:    func() spmesh.Stats { return rp.Stats().Stats },
		Big:      must(spmesh.Msgpack.Marshal("big")),
		BigHeld:  hostile.AnswersHeld(sock.ServerQueueFloor + 2 + reqrep.DefaultConcurrency),
		Bodies:   true,
		MaxConns: sptcp.MaxConns,
	}
	hostile.Run(t, tg, hostile.StandardAttacks(tg, 8<<20))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
