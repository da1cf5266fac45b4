package spmesh_test

import (
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/vmihailenco/msgpack/v5"
)

// benchItem is a typical small message.
type benchItem struct {
	ID    int64             `msgpack:"id"`
	Name  string            `msgpack:"name"`
	Tags  []string          `msgpack:"tags"`
	Attrs map[string]string `msgpack:"attrs"`
	Data  []byte            `msgpack:"data"`
}

func benchValue(size int) any {
	if size <= 64 {
		return benchItem{ID: 42, Name: "widget", Tags: []string{"a", "b"}, Attrs: map[string]string{"k": "v"}}
	}
	// A list of small structs with a string each, about size bytes.
	n := size / 64
	items := make([]benchItem, n)
	for i := range items {
		items[i] = benchItem{ID: int64(i), Name: strings.Repeat("x", 20), Tags: []string{"t"}, Data: []byte("0123456789")}
	}
	return items
}

var benchSizes = []struct {
	name string
	size int
}{{"small", 0}, {"256B", 256}, {"4KiB", 4 << 10}, {"64KiB", 64 << 10}}

func BenchmarkAppendMarshal(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			v := benchValue(s.size)
			buf, err := spmesh.AppendMarshal(spmesh.Msgpack, nil, v)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = spmesh.AppendMarshal(spmesh.Msgpack, buf[:0], v)
			}
		})
	}
}

// flatItem is benchItem without its map: a type that reaches no map, for
// which the codec's typed check is one cache lookup.
type flatItem struct {
	ID   int64     `msgpack:"id"`
	Name string    `msgpack:"name"`
	Tags []string  `msgpack:"tags"`
	At   time.Time `msgpack:"at"`
	Data []byte    `msgpack:"data"`
}

// mapItem is flatItem with a map: with its timestamp, a body that the
// typed check walks.
type mapItem struct {
	ID    int64             `msgpack:"id"`
	Name  string            `msgpack:"name"`
	Tags  []string          `msgpack:"tags"`
	At    time.Time         `msgpack:"at"`
	Attrs map[string]string `msgpack:"attrs"`
	Data  []byte            `msgpack:"data"`
}

// BenchmarkUnmarshal compares the codec's decoding (validator, then
// msgpack) with msgpack alone, and the validator alone, on the same bodies.
func BenchmarkUnmarshal(b *testing.B) {
	// One small struct without and with a map field, each with a timestamp
	// (the typed check looks the former up, and walks the bytes of the
	// latter; a body without an ext skips the check).
	for _, c := range []struct {
		name string
		v    any
		into func() any
	}{
		{"struct-nomap", flatItem{ID: 42, Name: "widget", Tags: []string{"a", "b"}, At: time.Unix(1e9, 5)}, func() any { return new(flatItem) }},
		{"struct-map", mapItem{ID: 42, Name: "widget", Tags: []string{"a", "b"}, At: time.Unix(1e9, 5), Attrs: map[string]string{"k": "v"}}, func() any { return new(mapItem) }},
	} {
		data, err := spmesh.Msgpack.Marshal(c.v)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name+"/codec", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := spmesh.Msgpack.Unmarshal(data, c.into()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, s := range benchSizes[1:] {
		v := benchValue(s.size)
		data, err := spmesh.Msgpack.Marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(s.name+"/codec", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				var out []benchItem
				if err := spmesh.Msgpack.Unmarshal(data, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(s.name+"/msgpack", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				var out []benchItem
				if err := msgpack.Unmarshal(data, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(s.name+"/check", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := spmesh.CheckMsgpack(data, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
