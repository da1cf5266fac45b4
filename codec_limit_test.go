package spmesh_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
)

type limitSample struct {
	Name  string
	N     int64
	F     float64
	B     []byte
	M     map[string]any
	L     []int
	T     time.Time
	P     *limitSample
	Iface any
}

// The limited encoder writes exactly what AppendMarshal writes (same
// msgpack settings), and stops at the limit.
func TestAppendMarshalLimitSameBytes(t *testing.T) {
	values := []any{
		nil, 1, -1 << 40, 3.5, "text", []byte("bytes"), []string{"a", "b"},
		map[string]int{"a": 1}, time.Unix(1700000000, 42).UTC(),
		limitSample{Name: "x", N: 7, F: 1.5, B: []byte{1, 2}, M: map[string]any{"k": "v"}, L: []int{1, 2, 3},
			T: time.Unix(5, 0).UTC(), P: &limitSample{Name: "inner"}, Iface: []any{1, "two"}},
	}
	for _, v := range values {
		want, err := spmesh.AppendMarshal(spmesh.Msgpack, []byte("hdr"), v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := spmesh.AppendMarshalLimit(spmesh.Msgpack, []byte("hdr"), v, 1<<20)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%T: got % x, %v; want % x", v, got, err, want)
		}
		if _, err := spmesh.AppendMarshalLimit(spmesh.Msgpack, []byte("hdr"), v, len(want)-1); len(want) > 4 && !errors.Is(err, spmesh.ErrTooLarge) {
			t.Fatalf("%T one byte under: got %v, want ErrTooLarge", v, err)
		}
	}
}

// A value far over the limit is refused without being encoded in full.
func TestAppendMarshalLimitStopsEarly(t *testing.T) {
	big := struct{ B []byte }{make([]byte, 64<<20)}
	allocs := testing.AllocsPerRun(3, func() {
		if _, err := spmesh.AppendMarshalLimit(spmesh.Msgpack, make([]byte, 0, 64), big, 1<<20); !errors.Is(err, spmesh.ErrTooLarge) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
	})
	if allocs > 8 {
		t.Fatalf("got %.0f allocations, want a handful (no copy of the body)", allocs)
	}
	many := make([]string, 1<<20)
	for i := range many {
		many[i] = "some string"
	}
	b, err := spmesh.AppendMarshalLimit(spmesh.Msgpack, nil, many, 64<<10)
	if !errors.Is(err, spmesh.ErrTooLarge) || cap(b) > 128<<10 {
		t.Fatalf("got %v with a %d-byte buffer, want ErrTooLarge near 64 KiB", err, cap(b))
	}
}

func BenchmarkEncodeOverLimit(b *testing.B) {
	big := struct{ B []byte }{make([]byte, 256<<20)}
	b.Run("AppendMarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out, _ := spmesh.AppendMarshal(spmesh.Msgpack, nil, big)
			if len(out) <= 8<<20 {
				b.Fatal("under the limit")
			}
		}
	})
	b.Run("AppendMarshalLimit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := spmesh.AppendMarshalLimit(spmesh.Msgpack, nil, big, 8<<20); err == nil {
				b.Fatal("no error")
			}
		}
	})
}
