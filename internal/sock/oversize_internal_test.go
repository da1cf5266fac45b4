package sock

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/wire"
	"go.nanomsg.org/mangos/v3"
)

func frameOf(hdr []uint32, env *wire.Msg, body []byte) []byte {
	var b []byte
	for _, h := range hdr {
		b = binary.BigEndian.AppendUint32(b, h)
	}
	return append(wire.AppendHeader(b, env), body...)
}

func testID() wire.ID { return wire.ID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16} }

func TestOversizeRequestMarker(t *testing.T) {
	so := &Socket{Settings: DefaultSettings()}
	long := spmesh.Header{"k": strings.Repeat("v", 1000)} // pushes the attempt past the prefix
	for _, tc := range []struct {
		name    string
		hdr     []uint32
		env     wire.Msg
		attempt uint32
	}{
		{"request", []uint32{0x80000007}, wire.Msg{Kind: wire.KindRequest, ID: testID(), Attempt: 3}, 3},
		{"job through a device", []uint32{0x00000001, 0x00000002, 0x80000007}, wire.Msg{Kind: wire.KindJob, ID: testID(), Attempt: 1}, 1},
		{"long headers", []uint32{0x80000007}, wire.Msg{Kind: wire.KindRequest, ID: testID(), Header: long, Attempt: 2}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := frameOf(tc.hdr, &tc.env, make([]byte, 4096))
			prefix := f[:512]
			out := so.OversizeFrame(mangos.ProtoReq, prefix, 9<<20)
			if out == nil {
				t.Fatal("got nil, want a marker")
			}
			n := 4 * len(tc.hdr)
			if string(out[:n]) != string(prefix[:n]) {
				t.Fatalf("got SP header % x, want % x", out[:n], prefix[:n])
			}
			o, ok := so.oversized(out[n:])
			if !ok || o.kind != tc.env.Kind || o.id != testID() || o.attempt != tc.attempt || o.size != 9<<20 {
				t.Fatalf("got %+v, %v; want kind %d, the id, attempt %d, size %d", o, ok, tc.env.Kind, tc.attempt, 9<<20)
			}
		})
	}
}

func TestOversizeRejectsHostilePrefixes(t *testing.T) {
	so := &Socket{Settings: DefaultSettings()}
	req := wire.Msg{Kind: wire.KindRequest, ID: testID()}
	for _, tc := range []struct {
		name   string
		proto  uint16
		prefix []byte
	}{
		{"empty", mangos.ProtoReq, nil},
		{"short header", mangos.ProtoReq, []byte{0x80, 0, 0}},
		{"no end of header in 8 hops", mangos.ProtoReq, frameOf([]uint32{1, 2, 3, 4, 5, 6, 7, 8, 0x80000001}, &req, nil)},
		{"garbage after the header", mangos.ProtoReq, []byte{0x80, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}},
		{"a reply from a REQ peer", mangos.ProtoReq, frameOf([]uint32{0x80000001}, &wire.Msg{Kind: wire.KindReply, ID: testID()}, nil)},
		{"no id", mangos.ProtoReq, frameOf([]uint32{0x80000001}, &wire.Msg{Kind: wire.KindRequest}, nil)},
		{"a request from a REP peer", mangos.ProtoRep, frameOf([]uint32{0x80000001}, &req, nil)},
		{"a backtrace from a REP peer", mangos.ProtoRep, frameOf([]uint32{1, 0x80000001}, &wire.Msg{Kind: wire.KindReply, ID: testID()}, nil)},
		{"a pub frame from a SURVEYOR peer", mangos.ProtoSurveyor, frameOf([]uint32{0x80000001}, &wire.Msg{Kind: wire.KindPublish, Topic: "t", ID: testID()}, nil)},
		{"a SUB peer", mangos.ProtoSub, frameOf([]uint32{0x80000001}, &req, nil)},
	} {
		if out := so.OversizeFrame(tc.proto, tc.prefix, 9<<20); out != nil {
			t.Errorf("%s: got % x, want nil", tc.name, out)
		}
	}
	// A marker is not forgeable by a peer that does not know the nonce.
	forged := append(append([]byte(nil), markerMagic[:]...), make([]byte, markerLen-len(markerMagic))...)
	if _, ok := so.oversized(forged); ok {
		t.Fatal("got a forged marker accepted")
	}
}

func TestOversizeAnswer(t *testing.T) {
	so := &Socket{Settings: DefaultSettings()}
	for _, tc := range []struct {
		proto uint16
		env   wire.Msg
		flags uint64
	}{
		{mangos.ProtoRep, wire.Msg{Kind: wire.KindReply, ID: testID(), Attempt: 2}, 0},
		{mangos.ProtoRep, wire.Msg{Kind: wire.KindAck, ID: testID(), Attempt: 2}, wire.FlagNack},
		{mangos.ProtoRespondent, wire.Msg{Kind: wire.KindResponse, ID: testID(), From: "r1"}, 0},
	} {
		f := frameOf([]uint32{0x80000009}, &tc.env, make([]byte, 4096))
		out := so.OversizeFrame(tc.proto, f[:512], 10<<20)
		if out == nil || binary.BigEndian.Uint32(out) != 0x80000009 {
			t.Fatalf("kind %d: got % x, want an answer with the request id", tc.env.Kind, out)
		}
		var got wire.Msg
		if err := wire.Decode(out[4:], &got); err != nil {
			t.Fatal(err)
		}
		if got.Kind != tc.env.Kind || got.ID != testID() || got.Code != spmesh.CodeTooLarge || got.From != tc.env.From ||
			got.Flags != tc.flags || !RefusedOnReceipt(&got) {
			t.Fatalf("got %+v, want kind %d, the id, code %d, from %q, flags %d", got, tc.env.Kind, spmesh.CodeTooLarge, tc.env.From, tc.flags)
		}
	}
}

// Whatever the prefix, OversizeFrame does not panic, and what it returns
// is a marker (requests) or a valid envelope (answers) after an SP header.
func FuzzOversizeFrame(f *testing.F) {
	f.Add(uint8(0), frameOf([]uint32{0x80000001}, &wire.Msg{Kind: wire.KindRequest, ID: testID(), Attempt: 1}, []byte("body")))
	f.Add(uint8(2), frameOf([]uint32{0x80000001}, &wire.Msg{Kind: wire.KindReply, ID: testID(), Attempt: 1}, []byte("body")))
	f.Add(uint8(3), frameOf([]uint32{0x80000001}, &wire.Msg{Kind: wire.KindResponse, ID: testID(), From: "x"}, nil))
	so := &Socket{Settings: DefaultSettings()}
	protos := []uint16{mangos.ProtoReq, mangos.ProtoSurveyor, mangos.ProtoRep, mangos.ProtoRespondent, mangos.ProtoSub}
	f.Fuzz(func(t *testing.T, p uint8, prefix []byte) {
		proto := protos[int(p)%len(protos)]
		out := so.OversizeFrame(proto, prefix, 1<<30)
		if out == nil {
			return
		}
		n := spHeader(out, maxHops)
		if n == 0 {
			t.Fatalf("got % x without an SP header", out)
		}
		switch proto {
		case mangos.ProtoReq, mangos.ProtoSurveyor:
			if _, ok := so.oversized(out[n:]); !ok {
				t.Fatalf("got % x, want a marker", out)
			}
		default:
			var env wire.Msg
			if err := wire.Decode(out[n:], &env); err != nil || env.Code != spmesh.CodeTooLarge {
				t.Fatalf("got %v, code %d; want a valid too-large answer", err, env.Code)
			}
		}
	})
}
