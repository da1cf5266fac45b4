package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/vmihailenco/msgpack/v5"
)

func TestEncoderValue(t *testing.T) {
	mp := encoder{codec: spmesh.Msgpack}
	for _, c := range []struct {
		enc  encoder
		in   string
		want any
	}{
		{mp, `{"a":1,"b":[true,null,"x"]}`, map[string]any{"a": int64(1), "b": []any{true, nil, "x"}}},
		{mp, `42`, int64(42)},
		{mp, `-7`, int64(-7)},
		{mp, `18446744073709551615`, uint64(math.MaxUint64)},
		{mp, `1.5`, 1.5},
		{mp, ` "quoted" `, "quoted"},
		{mp, `hello world`, "hello world"},
		{mp, `{"a":1} trailing`, `{"a":1} trailing`},
		{mp, ``, ""},
		{mp, "\xff\xfe", []byte{0xff, 0xfe}},
		{encoder{codec: spmesh.Msgpack, asString: true}, `42`, "42"},
		{encoder{codec: spmesh.Raw}, `{"a":1}`, []byte(`{"a":1}`)},
	} {
		got, err := c.enc.value([]byte(c.in))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("value(%q) with %s: got %#v, %v; want %#v", c.in, c.enc.codec.Name(), got, err, c.want)
		}
	}
}

func TestDecodeBody(t *testing.T) {
	mp := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, c := range []struct {
		codec spmesh.Codec
		data  []byte
		want  string
	}{
		{spmesh.Msgpack, mp(map[string]any{"path": "cat.jpg", "n": 3}), `{"n":3,"path":"cat.jpg"}`},
		{spmesh.Msgpack, mp("text"), `"text"`},
		{spmesh.Msgpack, mp(nil), `null`},
		{spmesh.Msgpack, mp(map[int]string{1: "x"}), `{"1":"x"}`},
		{spmesh.Msgpack, mp(map[string][]byte{"k": {0xff}}), `{"k":"ff"}`},
		{spmesh.Msgpack, mp([]byte("bytes")), `"bytes"`},
		{spmesh.Msgpack, mp(math.NaN()), `"NaN"`},
		{spmesh.Msgpack, append(mp(1), 0xc0), "hex:01c0"}, // trailing bytes: not one msgpack value
		{spmesh.Msgpack, []byte("hello"), "hello"},        // a raw peer's text
		{spmesh.Raw, []byte("hello\tworld"), "hello\tworld"},
		{spmesh.Raw, []byte{0, 1, 0xff}, "hex:0001ff"},
		{spmesh.Raw, nil, ""},
	} {
		if got := decodeBody(c.codec, c.data).String(); got != c.want {
			t.Errorf("decodeBody(%s, %x): got %q, want %q", c.codec.Name(), c.data, got, c.want)
		}
	}
	// A map with a binary key (not hashable as []byte) decodes.
	b := []byte{0x81, 0xc4, 0x01, 'k', 0x01} // {bin("k"): 1}
	if got, want := decodeBody(spmesh.Msgpack, b).String(), `{"k":1}`; got != want {
		t.Errorf("binary key: got %q, want %q", got, want)
	}
	// Hostile bodies never panic.
	for _, g := range testutil.Garbage() {
		decodeBody(spmesh.Msgpack, g)
		decodeBody(spmesh.Raw, g)
	}
	huge := []byte{0xdf, 0xff, 0xff, 0xff, 0xff} // a map claiming 4 G entries
	if got := decodeBody(spmesh.Msgpack, huge); got.Hex == "" {
		t.Errorf("truncated huge map: got %v, want a hex fallback", got)
	}
}

func TestBodyFields(t *testing.T) {
	o := map[string]any{}
	decodeBody(spmesh.Raw, []byte{0xff}).fields(o)
	if o["body_hex"] != "ff" || o["body"] != nil {
		t.Errorf("got %v, want body_hex ff and no body", o)
	}
	o = map[string]any{}
	decodeBody(spmesh.Raw, []byte("x")).fields(o)
	if o["body"] != "x" {
		t.Errorf("got %v, want body x", o)
	}
}

func TestGaps(t *testing.T) {
	g := gaps{}
	for _, c := range []struct {
		pub    uint64
		topic  string
		seq    uint64
		missed uint64
	}{
		{1, "a", 5, 0}, // first seen: joined late, no gap
		{1, "a", 6, 0},
		{1, "a", 9, 2},
		{1, "b", 1, 0}, // sequences are per publisher and topic
		{2, "a", 1, 0},
		{1, "b", 3, 1},
		{1, "a", 10, 0},
	} {
		if got := g.missed(c.pub, c.topic, c.seq); got != c.missed {
			t.Errorf("publisher %d topic %s seq %d: got %d missed, want %d", c.pub, c.topic, c.seq, got, c.missed)
		}
	}
}

func TestExitCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("x"), exitError},
		{withCode(exitNoService, errors.New("x")), exitNoService},
		{fmt.Errorf("wrapped: %w", withCode(exitNoJoin, errors.New("x"))), exitNoJoin},
		{&spmesh.RemoteError{Code: 3, Message: "x"}, exitRemoteError},
		{fmt.Errorf("call: %w", &spmesh.RemoteError{Message: "x"}), exitRemoteError},
		{context.Canceled, exitInterrupted},
		{usagef("bad"), exitUsage},
	} {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("exitCode(%v): got %d, want %d", c.err, got, c.want)
		}
	}
}

func TestHelpers(t *testing.T) {
	if got, want := oneLine("a: 1 error occurred:\n\t* failed x\n\n"), "a: 1 error occurred: failed x"; got != want {
		t.Errorf("oneLine: got %q, want %q", got, want)
	}
	for addrs, want := range map[string]bool{"127.0.0.1:7946": true, "localhost:1": true, "[::1]:2": true, "10.0.0.1:7946": false, "host": false} {
		if got := allLoopback([]string{addrs}); got != want {
			t.Errorf("allLoopback(%q): got %v, want %v", addrs, got, want)
		}
	}
	if got, want := envName("trace-id.x"), "TRACE_ID_X"; got != want {
		t.Errorf("envName: got %q, want %q", got, want)
	}
	if got, want := headerText(spmesh.Header{"b": "2", "a": "x y"}), `a="x y" b="2"`; got != want {
		t.Errorf("headerText: got %q, want %q", got, want)
	}
}
