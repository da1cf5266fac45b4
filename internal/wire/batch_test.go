package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/spmesh/spmesh"
)

// entries decodes every entry of a batch frame.
func entries(t testing.TB, frame []byte) ([]Msg, error) {
	t.Helper()
	var b Msg
	if err := Decode(frame, &b); err != nil {
		return nil, err
	}
	if b.Kind != KindBatch {
		t.Fatalf("got kind %d, want %d", b.Kind, KindBatch)
	}
	e := NewEntries(&b)
	n, err := e.Count()
	if err != nil {
		return nil, err
	}
	out := make([]Msg, 0, n)
	for {
		var m Msg
		ok, err := e.Next(&m)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		out = append(out, m)
	}
	if len(out) != n {
		t.Fatalf("got %d entries, Count said %d", len(out), n)
	}
	return out, nil
}

func batchOf(base *Msg, contents ...[]byte) []byte {
	b := *base
	b.Kind = KindBatch
	frame := AppendHeader(nil, &b)
	for _, c := range contents {
		frame = AppendEntry(frame, c)
	}
	return frame
}

func content(h spmesh.Header, body string) []byte {
	return append(AppendEntryHead(nil, h), body...)
}

// The example in the package doc, byte for byte.
func TestBatchDocExample(t *testing.T) {
	base := &Msg{Topic: "t", ID: ID{15: 5}, Time: 1, Pub: 2, Seq: 7}
	frame := batchOf(base, content(nil, "a"), content(spmesh.Header{"k": "v"}, "bc"))
	want := "74 00 01 09 84 01 c4 10 00000000000000000000000000000005 02 01 04 02 05 07" +
		" c4 02 80 61 c4 09 81 03 81 a1 6b a1 76 62 63"
	if got := hex.EncodeToString(frame); got != strings.ReplaceAll(want, " ", "") {
		t.Fatalf("got frame %s, want %s", got, want)
	}
	ms, err := entries(t, frame)
	if err != nil {
		t.Fatal(err)
	}
	wantMsgs := []Msg{
		{Kind: KindPublish, Topic: "t", ID: ID{15: 5}, Time: 1, Pub: 2, Seq: 7, Body: []byte("a")},
		{Kind: KindPublish, Topic: "t", ID: ID{15: 6}, Time: 1, Pub: 2, Seq: 8, Header: spmesh.Header{"k": "v"}, Body: []byte("bc")},
	}
	if !reflect.DeepEqual(ms, wantMsgs) {
		t.Fatalf("got %+v, want %+v", ms, wantMsgs)
	}
}

func TestBatchEntryOverrides(t *testing.T) {
	base := &Msg{Topic: "a.b", ID: ID{7, 15: 0xff}, Time: 100, Pub: 9, Seq: 1, From: "x"}
	// Entry 1 carries its own seq (key 5) and time (key 2): they win.
	own := []byte{0x82, 5, 50, 2, 0x7f}
	ms, err := entries(t, batchOf(base, content(nil, ""), append(own, "body"...), content(nil, "z")))
	if err != nil {
		t.Fatal(err)
	}
	if got := []uint64{ms[0].Seq, ms[1].Seq, ms[2].Seq}; !reflect.DeepEqual(got, []uint64{1, 50, 3}) {
		t.Fatalf("got seqs %v, want [1 50 3]", got)
	}
	if ms[1].Time != 0x7f || ms[0].Time != 100 || ms[2].From != "x" {
		t.Fatalf("got %+v, want entry 1 with its own time and the rest inherited", ms)
	}
	if ms[2].ID != (ID{7, 14: 1, 15: 1}) {
		t.Fatalf("got id %x, want the carry into byte 14", ms[2].ID)
	}
	if string(ms[1].Body) != "body" || len(ms[0].Body) != 0 {
		t.Fatalf("got bodies %q %q, want \"\" \"body\"", ms[0].Body, ms[1].Body)
	}
}

// A lone entry sent as a plain frame decodes to what its batch would give.
func TestAppendPublishEntry(t *testing.T) {
	base := &Msg{Topic: "images.ready", ID: ID{1, 15: 9}, Time: 1700000000123456789, Pub: 1 << 60, Seq: 1 << 40}
	for _, h := range []spmesh.Header{nil, {"trace": "abc", "k": ""}} {
		c := content(h, "payload")
		frame := AppendPublishEntry(nil, base, c)
		if len(frame) > len(c)+PublishOverhead(base.Topic) {
			t.Fatalf("got a %d-byte frame, want at most %d", len(frame), len(c)+PublishOverhead(base.Topic))
		}
		var got Msg
		if err := Decode(frame, &got); err != nil {
			t.Fatal(err)
		}
		ms, err := entries(t, batchOf(base, c))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, ms[0]) {
			t.Fatalf("plain frame gave %+v, batch gave %+v", got, ms[0])
		}
	}
}

func TestBatchRejects(t *testing.T) {
	head := AppendHeader(nil, &Msg{Kind: KindBatch, Topic: "t", Seq: 1})
	bad := map[string][]byte{
		"no topic":       AppendHeader(nil, &Msg{Kind: KindBatch}),
		"no entries":     head,
		"not a bin":      append(head, 0xa1, 'x'),
		"short bin":      append(head, 0xc4, 5, 0x80),
		"huge bin":       append(head, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x80),
		"empty entry":    append(head, 0xc4, 0),
		"map past entry": append(head, 0xc4, 2, 0x81, 2, 7),
		"huge headers":   append(head, 0xc4, 7, 0x81, 3, 0xdf, 0xff, 0xff, 0xff, 0xff),
		"bad then good":  append(append(head, 0xc4, 1, 0x91), 0xc4, 1, 0x80),
	}
	for name, frame := range bad {
		if ms, err := entries(t, frame); err == nil {
			t.Errorf("%s: decoded without error: %+v", name, ms)
		} else if !errors.Is(err, spmesh.ErrDecode) {
			t.Errorf("%s: got %v, want an error wrapping ErrDecode", name, err)
		}
	}
}

func TestDecoderReusesTopic(t *testing.T) {
	frame := append(AppendHeader(nil, &Msg{Kind: KindPublish, Topic: "images.ready", Seq: 1}), make([]byte, 64)...)
	var d Decoder
	var m Msg
	if err := d.Decode(frame, &m); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := d.Decode(frame, &m); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("got %v allocs per Decode of the same topic, want 0", n)
	}
	other := append(AppendHeader(nil, &Msg{Kind: KindPublish, Topic: "images.done"}), 'x')
	if err := d.Decode(other, &m); err != nil || m.Topic != "images.done" {
		t.Fatalf("got topic %q (%v), want images.done", m.Topic, err)
	}
}

func TestEntriesAllocs(t *testing.T) {
	var cs [][]byte
	for range 50 {
		cs = append(cs, content(nil, strings.Repeat("x", 256)))
	}
	frame := batchOf(&Msg{Topic: "bench", Seq: 1}, cs...)
	var b, m Msg
	if err := Decode(frame, &b); err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(100, func() {
		e := NewEntries(&b)
		for {
			ok, err := e.Next(&m)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
		}
	})
	if n != 0 {
		t.Fatalf("got %v allocs per batch of 50 entries without headers, want 0", n)
	}
	if !bytes.Equal(m.Body, cs[49][1:]) {
		t.Fatalf("last body differs")
	}
}
