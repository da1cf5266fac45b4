package reqrep_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/reqrep"
)

// TestDroppedReplyClosesConnection: a peer that is slow to take its replies
// may have some dropped (counted in SendTimeouts), but then its connection
// is closed, so that it resends those requests. A reply dropped on a
// connection left open would leave its caller waiting forever, since a
// Requester has no attempt timeout by default (this lost 22 of 10,000
// requests of TestConcurrentNoCrossTalk on a loaded machine).
func TestDroppedReplyClosesConnection(t *testing.T) {
	addr := testutil.FreeTCP(t)
	big := make([]byte, 256<<10)
	rp := mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		return big, nil
	}), reqrep.WithListen(addr), reqrep.WithBareFrames(), reqrep.WithCodec(spmesh.Raw),
		reqrep.WithConcurrency(8), reqrep.WithSendTimeout(time.Minute))
	peer := testutil.DialSPBuffer(t, addr, testutil.ProtoReq, 4<<10)
	const n = 40
	for i := range n {
		if err := peer.Send([]byte("x"), 0x80000000|uint32(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	// The peer reads nothing until replies were dropped for it (the
	// replier's workers stop waiting for a stalled peer after 250ms, far
	// within the send timeout).
	testutil.Eventually(t, 20*time.Second, func() error {
		if st := rp.Stats(); st.SendTimeouts == 0 {
			return fmt.Errorf("no reply dropped yet: %+v", st)
		}
		return nil
	})
	got := 0
	var err error
	for got < n {
		if _, err = peer.Recv(5 * time.Second); err != nil {
			break
		}
		got++
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("got %d of %d replies and the connection stayed open: the dropped replies' requests are never resent (stats %+v)", got, n, rp.Stats())
	}
	if got == n {
		t.Fatalf("got all %d replies, yet %d were counted dropped", n, rp.Stats().SendTimeouts)
	}
	t.Logf("got %d of %d replies, then the connection closed (%v); dropped %d", got, n, err, rp.Stats().SendTimeouts)
}
