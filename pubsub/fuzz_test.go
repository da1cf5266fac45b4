package pubsub_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/pubsub"
	mpub "go.nanomsg.org/mangos/v3/protocol/pub"
)

type fuzzItem struct {
	A int64
	B string
	C []byte
}

// decodeAll decodes m's body into each type a typed consumer might use;
// it returns the error of the decode into any.
func decodeAll(m *pubsub.Message) error {
	_, _ = spmesh.Decode[map[string]any](m)
	_, _ = spmesh.Decode[[]fuzzItem](m)
	_, _ = spmesh.Decode[[]int64](m)
	_, _ = spmesh.Decode[[]byte](m)
	_, _ = spmesh.Decode[string](m)
	_, err := spmesh.Decode[any](m)
	return err
}

// FuzzSubscriber feeds a Subscriber, over a real mangos socket, an
// arbitrary frame and then a well-formed message with an arbitrary body,
// and decodes every message it delivers into any, map[string]any,
// []struct, []int64, []byte and string. A probe after them marks the end
// of each round. The message with the arbitrary body must arrive, and
// decode exactly when the codec decodes its body here.
func FuzzSubscriber(f *testing.F) {
	addr := testutil.Inproc(f)
	s, err := pubsub.NewSubscriber(pubsub.WithListen(addr), pubsub.WithSubscribe(">"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	raw, err := mpub.NewSocket()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { raw.Close() })
	if err := raw.Dial(addr); err != nil {
		f.Fatal(err)
	}
	// Publisher ids the fuzzer is unlikely to forge.
	const probePub, bodyPub = 0x9e3779b97f4a7c15, 0x9e3779b97f4a7c16
	probe := func(seq uint64) []byte {
		return append(wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindPublish, Topic: "probe", Pub: probePub, Seq: seq}), 0xc0)
	}
	// Wait until a probe gets through.
	var seq uint64
	testutil.Eventually(f, 10*time.Second, func() error {
		seq++
		if err := raw.Send(probe(seq)); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := s.Next(ctx)
		return err
	})
	for { // drain the probes still in flight
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := s.Next(ctx)
		cancel()
		if err != nil {
			break
		}
	}

	head := wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindBatch, Topic: "b", Pub: 3, Seq: 1})
	for _, c := range []struct{ frame, body []byte }{
		{append(wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindPublish, Topic: "a.b", Seq: 1}), 0x91, 0x01), []byte{0x81, 0xa1, 'A', 0x05}},
		{append(append([]byte(nil), head...), wire.AppendEntry(nil, []byte{0x80, 0x92, 0x01, 0x02})...), []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}},
		{append(append([]byte(nil), head...), bytes.Repeat([]byte{0xc4, 0}, 100)...), []byte{0xdb, 0xff, 0xff, 0xff, 0xff}},
		{append(append([]byte(nil), head...), 0xc4, 7, 0x81, 3, 0xdf, 0xff, 0xff, 0xff, 0xff), bytes.Repeat([]byte{0x91}, 300)},
		{[]byte("t\x00\x01\x01\x81\x03\xdf\xff\xff\xff\xff"), []byte{0x92, 0xc4, 0x01, 'x', 0xa1, 'y'}},
		// Tail frames (kind 10): carry no message, never delivered.
		{[]byte("t\x00\x01\x0a\x82\x04\x03\x05\x07"), []byte{0xc0}},
		{append(wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindTail, Topic: "body", Pub: bodyPub, Seq: 1 << 62}), 'x'), []byte{0x01}},
	} {
		f.Add(c.frame, c.body)
	}
	f.Fuzz(func(t *testing.T, frame, body []byte) {
		if err := raw.Send(frame); err != nil {
			t.Fatal(err)
		}
		seq++
		msg := append(wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindPublish, Topic: "body", Pub: bodyPub, Seq: seq}), body...)
		if err := raw.Send(msg); err != nil {
			t.Fatal(err)
		}
		if err := raw.Send(probe(seq)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		gotBody := false
		for {
			m, err := s.Next(ctx)
			if err != nil {
				t.Fatalf("waiting for probe %d: %v", seq, err)
			}
			if m.Topic == "probe" && m.Publisher == probePub && m.Seq == seq {
				break
			}
			derr := decodeAll(m)
			if m.Topic == "body" && m.Publisher == bodyPub && m.Seq == seq {
				gotBody = true
				var v any
				local := spmesh.Msgpack.Unmarshal(body, &v)
				if (local == nil) != (derr == nil) || derr != nil && !errors.Is(derr, spmesh.ErrDecode) {
					t.Fatalf("body %x: delivered decode got %v, local decode %v", body, derr, local)
				}
			}
		}
		if !gotBody {
			t.Fatalf("message with body %x not delivered", body)
		}
	})
}
