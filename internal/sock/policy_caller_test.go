package sock_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pipeline"
	"github.com/spmesh/spmesh/reqrep"
)

// The error a caller gets when nothing could be reached names the cause:
// here a mutual TLS listener refusing a client without a certificate.
func TestCallerErrorNamesHandshakeFailure(t *testing.T) {
	m := newMesh(t)
	srvCert := m.cert("server", "127.0.0.1")
	rep, err := reqrep.NewReplier(reqrep.HandlerFunc(func(ctx context.Context, r *reqrep.Request) (any, error) { return "ok", nil }),
		reqrep.WithTLS(m.ca.Server(srvCert, true)), reqrep.WithListen("tls+tcp://127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	addr := rep.Addrs()[0]
	rq, err := reqrep.NewRequester(reqrep.WithTLS(m.ca.Client(nil)), reqrep.WithDial(addr),
		reqrep.WithReconnect(20*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer rq.Close()
	testutil.Eventually(t, 10*time.Second, func() error {
		if st := rq.Stats(); st.HandshakeErrors == 0 {
			return errors.New("no handshake error yet")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = rq.Request(ctx, "hi", nil)
	if !errors.Is(err, spmesh.ErrNoPeers) || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), "127.0.0.1:") {
		t.Fatalf("got %v, want ErrNoPeers naming the refused certificate and the address", err)
	}

	// The same for a pusher.
	pl, err := pipeline.NewPuller(pipeline.WithTLS(m.ca.Server(srvCert, true)))
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	paddr, err := pl.Listen("tls+tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := pipeline.NewPusher(pipeline.WithTLS(m.ca.Client(nil)), pipeline.WithDial(paddr), pipeline.WithNonBlocking(),
		pipeline.WithReconnect(20*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	testutil.Eventually(t, 10*time.Second, func() error {
		if st := ps.Stats(); st.HandshakeErrors == 0 {
			return errors.New("no handshake error yet")
		}
		return nil
	})
	err = ps.Push(ctx, "job")
	if !errors.Is(err, spmesh.ErrNoPeers) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("push: got %v, want ErrNoPeers naming the refused certificate", err)
	}
}
