package survey_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/hostile"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/survey"
)

// FuzzSurveyor feeds a Surveyor, over real TCP, an arbitrary answer from a
// raw respondent: with the survey's id, with none (the bytes as they come),
// or with an id it never issued; then a proper answer. The survey must
// deliver the proper answer, and every frame that arrived must be counted
// exactly once: Received, DecodeErrors or one of the Dropped causes.
func FuzzSurveyor(f *testing.F) {
	addr := testutil.FreeTCP(f)
	s, err := survey.NewSurveyor(survey.WithListen(addr), survey.WithCodec(spmesh.Raw))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	raw := testutil.DialSP(f, addr, hostile.ProtoRespondent)
	testutil.Eventually(f, 10*time.Second, func() error {
		if n := s.Stats().Peers; n != 1 {
			return fmt.Errorf("%d peers, want the raw respondent", n)
		}
		return nil
	})
	answer := func(id wire.ID, body string) []byte {
		return append(wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindResponse, ID: id, From: "fuzz"}), body...)
	}
	var zero wire.ID
	for _, s := range []struct {
		mode  byte
		frame []byte
	}{
		{0, answer(zero, "x")},
		{0, []byte("garbage")},
		{1, []byte{0x80, 0, 0}},
		{1, []byte{0x80, 0, 0, 1, 0x01}},
		{2, answer(zero, "")},
		{0, []byte{0x01, 0x07, 0x81, 0x03, 0xdf, 0xff, 0xff, 0xff, 0xff}},
	} {
		f.Add(s.mode, s.frame)
	}
	var frames uint64
	f.Fuzz(func(t *testing.T, mode byte, frame []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		rs, err := s.Survey(ctx, []byte("q"), survey.WithTimeout(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		q, err := raw.Recv(10 * time.Second)
		if err != nil || len(q) < 4 {
			t.Fatalf("question: % x, %v", q, err)
		}
		id := binary.BigEndian.Uint32(q)
		var qenv wire.Msg
		if err := wire.Decode(q[4:], &qenv); err != nil {
			t.Fatalf("question envelope: %v", err)
		}
		switch mode % 3 {
		case 0:
			err = raw.Send(frame, id)
		case 1:
			err = raw.Send(frame)
		default:
			err = raw.Send(frame, id^0x7fffffff)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := raw.Send(answer(qenv.ID, "proper"), id); err != nil {
			t.Fatal(err)
		}
		frames += 2
		for {
			r, err := rs.Next(ctx)
			if err != nil {
				t.Fatalf("frame % x (mode %d): the proper answer did not arrive: %v", frame, mode%3, err)
			}
			if r.From == "fuzz" && string(r.Data) == "proper" {
				break
			}
		}
		rs.Close()
		testutil.Eventually(t, 10*time.Second, func() error {
			st := s.Stats()
			if got := st.Received + st.DecodeErrors + st.Dropped; got != frames {
				return fmt.Errorf("frame % x (mode %d): %d received + %d decode errors + %d dropped = %d, want every one of %d frames counted once",
					frame, mode%3, st.Received, st.DecodeErrors, st.Dropped, got, frames)
			}
			return nil
		})
	})
}
