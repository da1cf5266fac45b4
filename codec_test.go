package spmesh_test

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/spmesh/spmesh"
)

type smallItem struct {
	A int64
	B string
}

// targets are the types a typed handler decodes bodies into.
func targets() []struct {
	name string
	new  func() any
} {
	return []struct {
		name string
		new  func() any
	}{
		{"any", func() any { return new(any) }},
		{"map[string]any", func() any { return new(map[string]any) }},
		{"[]struct", func() any { return new([]smallItem) }},
		{"[]int64", func() any { return new([]int64) }},
		{"[]byte", func() any { return new([]byte) }},
		{"string", func() any { return new(string) }},
	}
}

// allocated returns the bytes allocated while f runs.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestMsgpackRejectsHostileBodies(t *testing.T) {
	bodies := []struct {
		name string
		b    []byte
	}{
		{"array32 of 2^32-1", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}},
		{"map32 of 2^32-1", []byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0xa0, 0xc0}},
		{"array16 of 2^16-1 in 1 KiB", append([]byte{0xdc, 0xff, 0xff}, make([]byte, 1024)...)},
		{"str32 of 4 GiB", []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}},
		{"bin32 of 4 GiB", []byte{0xc6, 0xff, 0xff, 0xff, 0xff, 'a'}},
		{"ext32 of 4 GiB", []byte{0xc9, 0xff, 0xff, 0xff, 0xff, 1, 'a'}},
		{"array of array32 claims", []byte{0x92, 0xdd, 0, 0, 0, 2, 1, 2, 0xdd, 0xff, 0xff, 0xff, 0xff}},
		{"10 M nesting", bytes.Repeat([]byte{0x91}, 10<<20)},
		{"257 levels", append(bytes.Repeat([]byte{0x91}, 256), 0x90)},
		{"truncated", []byte{0x93, 1, 2}},
		{"trailing", []byte{0x01, 0x02}},
		{"empty", nil},
	}
	for _, body := range bodies {
		most := uint64(0)
		for _, tg := range targets() {
			var err error
			n := allocated(func() { err = spmesh.Msgpack.Unmarshal(body.b, tg.new()) })
			most = max(most, n)
			if !errors.Is(err, spmesh.ErrDecode) {
				t.Errorf("%s into %s: got %v, want ErrDecode", body.name, tg.name, err)
			}
			if limit := uint64(4*len(body.b) + 16<<10); n > limit {
				t.Errorf("%s into %s: allocated %d bytes for %d, want at most %d", body.name, tg.name, n, len(body.b), limit)
			}
		}
		t.Logf("%-28s %9d bytes: at most %6d bytes allocated by a rejection (any of the 6 types)", body.name, len(body.b), most)
	}
}

// TestMsgpackAllocationBound decodes the largest valid bodies of 1-byte
// elements that fit in 1 MiB and reports allocation per body byte: the
// bound that holds whatever a peer sends.
func TestMsgpackAllocationBound(t *testing.T) {
	const size = 1 << 20
	array := func(elem []byte) []byte { // array32 of 1-byte (or 2-byte) elements filling size
		n := (size - 5) / len(elem)
		b := []byte{0xdd, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
		return append(b, bytes.Repeat(elem, n)...)
	}
	mapOf := func() []byte { // map32 of distinct 1..4-byte keys with nil values
		var pairs [][]byte
		total := 5
		for i := 0; total < size-8; i++ {
			k := []byte(strings.TrimLeft(string([]byte{byte(i >> 16), byte(i >> 8), byte(i)}), "\x00"))
			p := append(append([]byte{0xa0 | byte(len(k))}, k...), 0xc0)
			pairs = append(pairs, p)
			total += len(p)
		}
		n := len(pairs)
		b := []byte{0xdf, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
		return append(b, bytes.Join(pairs, nil)...)
	}
	cases := []struct {
		name  string
		b     []byte
		into  func() any
		limit float64 // bytes allocated per body byte
	}{
		// Limits: an element of 16 bytes (an interface) or of 8 (int64),
		// 24 (smallItem) or 24+16 (an empty []any boxed in an interface)
		// per body byte, times 2 for slice growth above msgpack's 1e6
		// preallocation cap.
		{"nils into any", array([]byte{0xc0}), func() any { return new(any) }, 2*16 + 2},
		{"ints into any", array([]byte{0x7f}), func() any { return new(any) }, 2*16 + 2},
		{"empty arrays into any", array([]byte{0x90}), func() any { return new(any) }, 2*40 + 2},
		{"nils into []int64", array([]byte{0xc0}), func() any { return new([]int64) }, 2*8 + 2},
		{"nils into []struct", array([]byte{0xc0}), func() any { return new([]smallItem) }, 2*24 + 2},
		{"empty maps into []struct", array([]byte{0x80}), func() any { return new([]smallItem) }, 2*24 + 2},
		{"distinct keys into map[string]any", mapOf(), func() any { return new(map[string]any) }, 64},
		{"distinct keys into any", mapOf(), func() any { return new(any) }, 64},
	}
	for _, c := range cases {
		var err error
		n := allocated(func() { err = spmesh.Msgpack.Unmarshal(c.b, c.into()) })
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		ratio := float64(n) / float64(len(c.b))
		t.Logf("%-36s %8d bytes -> %10d allocated (%.1fx)", c.name, len(c.b), n, ratio)
		if ratio > c.limit {
			t.Errorf("%s: allocated %.1fx the body, want at most %.0fx", c.name, ratio, c.limit)
		}
	}
}

// TestMsgpackLargeStructTrap shows the amplification that stays: one byte
// per element, whatever the element's size.
func TestMsgpackLargeStructTrap(t *testing.T) {
	type big struct{ A, B, C, D, E, F, G, H [8]int64 } // 512 bytes
	n := 1 << 12
	b := append([]byte{0xdc, byte(n >> 8), byte(n)}, bytes.Repeat([]byte{0xc0}, n)...)
	var v []big
	got := allocated(func() {
		if err := spmesh.Msgpack.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
	})
	if len(v) != n || got < uint64(n*512) {
		t.Fatalf("got %d elements, %d bytes allocated; want %d, >= %d", len(v), got, n, n*512)
	}
	t.Logf("%d nils (%d bytes) into []big (512 B each): %d bytes allocated (%.0fx)", n, len(b), got, float64(got)/float64(len(b)))
}

func TestMsgpackDepthOption(t *testing.T) {
	body := func(depth int) []byte { return append(bytes.Repeat([]byte{0x91}, depth-1), 0x90) }
	var v any
	if err := spmesh.Msgpack.Unmarshal(body(spmesh.DefaultMsgpackDepth), &v); err != nil {
		t.Errorf("default codec, depth at the limit: got %v, want nil", err)
	}
	c, err := spmesh.NewMsgpack(1000)
	if err != nil {
		t.Fatal(err)
	}
	v = nil
	if err := c.Unmarshal(body(1000), &v); err != nil {
		t.Errorf("NewMsgpack(1000), depth 1000: got %v, want nil", err)
	}
	if err := c.Unmarshal(body(1001), &v); !errors.Is(err, spmesh.ErrDecode) || !strings.Contains(err.Error(), "nested deeper than 1000") {
		t.Errorf("NewMsgpack(1000), depth 1001: got %v, want ErrDecode naming the limit", err)
	}
	for _, d := range []int{0, -1, spmesh.MaxMsgpackDepth + 1} {
		if _, err := spmesh.NewMsgpack(d); !errors.Is(err, spmesh.ErrInvalidOption) {
			t.Errorf("NewMsgpack(%d): got %v, want ErrInvalidOption", d, err)
		}
	}
	if err := spmesh.CheckMsgpack(body(10), 5); !errors.Is(err, spmesh.ErrDecode) {
		t.Errorf("CheckMsgpack over the limit: got %v, want ErrDecode", err)
	}
	if err := spmesh.CheckMsgpack(body(10), 0); err != nil {
		t.Errorf("CheckMsgpack at the default: got %v, want nil", err)
	}
}

func TestDecodeErrorCarriesCode(t *testing.T) {
	for _, c := range []spmesh.Codec{spmesh.Msgpack, spmesh.Raw} {
		err := c.Unmarshal([]byte{0xc1}, new(int))
		var coder spmesh.Coder
		if !errors.Is(err, spmesh.ErrDecode) || !errors.As(err, &coder) || coder.Code() != spmesh.CodeDecode {
			t.Errorf("%s: got %v, want ErrDecode with code %d", c.Name(), err, spmesh.CodeDecode)
		}
	}
}

type node struct {
	Name string
	Next *node
}

func TestMarshalCycleFails(t *testing.T) {
	loop := &node{Name: "a"}
	loop.Next = loop
	self := []any{nil}
	self[0] = self
	m := map[string]any{}
	m["m"] = m
	big := map[string]any{"blob": strings.Repeat("x", 4096)}
	big["again"] = big
	for _, c := range []struct {
		name string
		v    any
	}{{"pointer cycle", loop}, {"slice cycle", self}, {"map cycle", m}, {"cycle with 4 KiB a level", big}} {
		if _, err := spmesh.Msgpack.Marshal(c.v); err == nil || !strings.Contains(err.Error(), "nested deeper") {
			t.Errorf("Marshal(%s): got %v, want a nesting error", c.name, err)
		}
		dst := []byte("prefix")
		out, err := spmesh.AppendMarshal(spmesh.Msgpack, dst, c.v)
		if err == nil || string(out) != "prefix" {
			t.Errorf("AppendMarshal(%s): got %q..., %v; want dst back and an error", c.name, out[:min(len(out), 10)], err)
		}
	}
	// The encoder is still fine afterwards.
	b, err := spmesh.Msgpack.Marshal(node{Name: "x"})
	var back node
	if err != nil || spmesh.Msgpack.Unmarshal(b, &back) != nil || back.Name != "x" {
		t.Fatalf("after a cycle: got %v, %+v", err, back)
	}
}

func TestMarshalDeepButLegal(t *testing.T) {
	// Nested 200 deep with 1 KiB a level: over the guard's first look at
	// 64 KiB, under the limit.
	var v any = "end"
	for range 200 {
		v = []any{strings.Repeat("y", 1024), v}
	}
	b, err := spmesh.Msgpack.Marshal(v)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var back any
	if err := spmesh.Msgpack.Unmarshal(b, &back); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
}
