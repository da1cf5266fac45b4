package reqrep_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/reqrep"
)

// A raw (non-envelope) request, as a stock NNG REQ sends, gets an error
// reply that says the frame is not an spmesh envelope and points to
// WIRE.md (not "topic not terminated"), is counted, and never reaches the
// handler.
func TestRawRequestNotEnvelope(t *testing.T) {
	addr := testutil.FreeTCP(t)
	r := mustReplier(t, reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		t.Error("handler called for a raw frame")
		return nil, nil
	}), reqrep.WithListen(addr))
	peer := testutil.DialSP(t, addr, testutil.ProtoReq)
	for i, tc := range []struct {
		body, want string
	}{
		{"hello", "not an spmesh envelope: first byte 0x68 'h', want version 0x01"},
		{"\x00\x01", "not an spmesh envelope: first byte 0x00, want version 0x01"},
		{"hi\x00\x02", "unsupported envelope version 2 at byte 3"},
		{"", "empty frame, not an spmesh envelope"},
	} {
		id := 0x80000000 | uint32(i+1)
		if err := peer.Send([]byte(tc.body), id); err != nil {
			t.Fatal(err)
		}
		b, err := peer.Recv(10 * time.Second)
		if err != nil {
			t.Fatalf("%q: no reply: %v", tc.body, err)
		}
		if len(b) < 4 || binary.BigEndian.Uint32(b) != id {
			t.Fatalf("%q: got reply %x, want it to start with request id %08x", tc.body, b, id)
		}
		var env wire.Msg
		if err := wire.Decode(b[4:], &env); err != nil {
			t.Fatalf("%q: reply: %v", tc.body, err)
		}
		if env.Kind != wire.KindReply || env.Code != spmesh.CodeDecode {
			t.Errorf("%q: got kind %d code %d, want %d and %d", tc.body, env.Kind, env.Code, wire.KindReply, spmesh.CodeDecode)
		}
		if !strings.Contains(env.Err, tc.want) || !strings.Contains(env.Err, "WIRE.md") {
			t.Errorf("%q: got error %q, want it to contain %q and WIRE.md", tc.body, env.Err, tc.want)
		}
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := r.Stats().DecodeErrors; n != 4 {
			return fmt.Errorf("got %d decode errors, want 4", n)
		}
		return nil
	})
}
