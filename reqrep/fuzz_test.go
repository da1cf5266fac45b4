package reqrep_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/reqrep"
	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/req"
)

type fuzzItem struct {
	A int64
	B string
	C []byte
}

// decodeAll decodes a body into each type a typed handler might use; it
// returns the error of the decode into any.
func decodeAll(dec func(v any) error) error {
	var m map[string]any
	var s []fuzzItem
	var n []int64
	var b []byte
	var str string
	_, _, _, _, _ = dec(&m), dec(&s), dec(&n), dec(&b), dec(&str)
	var v any
	return dec(&v)
}

// FuzzReplier feeds a Replier, over a real mangos socket, an arbitrary
// frame from a raw REQ peer and an arbitrary body from a Requester; its
// handler decodes every body into any, map[string]any, []struct, []int64,
// []byte and string. The Replier must answer both, and the Requester's
// error must be a decode error exactly when the body does not decode.
func FuzzReplier(f *testing.F) {
	handled := new(atomic.Uint64)
	h := reqrep.HandlerFunc(func(ctx context.Context, r *reqrep.Request) (any, error) {
		handled.Add(1)
		if err := decodeAll(r.Decode); err != nil {
			return nil, err
		}
		return "ok", nil
	})
	addr := testutil.Inproc(f)
	rp := mustReplier(f, h, reqrep.WithListen(addr), reqrep.WithConcurrency(2))
	// Raw: the fuzzed body goes out as it is, whatever it holds.
	rq := mustRequester(f, reqrep.WithDial(addr), reqrep.WithCodec(spmesh.Raw), reqrep.WithMaxAttempts(1), reqrep.WithAttemptTimeout(2*time.Second))
	raw, err := req.NewSocket()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { raw.Close() })
	if err := raw.Dial(addr); err != nil {
		f.Fatal(err)
	}
	raw.SetOption(mangos.OptionRecvDeadline, 2*time.Second)
	peers(f, rq, 1)
	testutil.Eventually(f, 10*time.Second, func() error {
		if rp.Stats().Peers < 2 {
			return errors.New("raw peer not connected")
		}
		return nil
	})

	request := func(body string) []byte {
		return append(wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindRequest, Attempt: 1}), body...)
	}
	for _, s := range []struct{ frame, body string }{
		{string(request("\x93\x01\xa1x\xc0")), "\x81\xa1A\x05"},
		{"\x01\x02\x81\x03\xdf\xff\xff\xff\xff", "\xdd\xff\xff\xff\xff\xc0"},
		{string(request("\xdb\xff\xff\xff\xff")), "\xc6\xff\xff\xff\xff\x00"},
		{"garbage", "\x91\x91\x91\x91\x91\x91\x90"},
		{string(request("\x92\x81\xa1A\x01\x80")), "\xc4\x03abc"},
		{string(request("\xd6\xff\x00\x00\x00\x01")), "\xc7\x05\xff\x00\x00\x00\x00\x00"},
		// An ext holding a map claiming 808 M pairs: msgpack decodes it as
		// that map into map[string]any (once an 808 M-entry allocation).
		{"0", "\xc7\x05\x30\xdf\x30\x30\x30\x30"},
	} {
		f.Add([]byte(s.frame), []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, frame, body []byte) {
		if err := raw.Send(frame); err != nil {
			t.Fatalf("raw send: %v", err)
		}
		reply, err := raw.Recv()
		if err != nil {
			t.Fatalf("no reply to frame %x: %v", frame, err)
		}
		var env wire.Msg
		if err := wire.Decode(reply, &env); err != nil || env.Kind != wire.KindReply {
			t.Fatalf("reply to frame %x: kind %d, %v", frame, env.Kind, err)
		}

		_, err = rq.Do(context.Background(), &reqrep.Call{Body: body})
		var v any
		local := spmesh.Msgpack.Unmarshal(body, &v)
		switch {
		case local == nil && err != nil:
			t.Fatalf("body %x decodes here but the call failed: %v", body, err)
		case local != nil && !errors.Is(err, spmesh.ErrDecode):
			t.Fatalf("body %x does not decode (%v) but the call got %v, want ErrDecode", body, local, err)
		}
	})
}
