package spmesh

import "testing"

// BenchmarkGuard is what the encoder's cycle guard costs each time it
// looks (once per 64 KiB of output) from a shallow stack.
func BenchmarkGuard(b *testing.B) {
	w := &appendWriter{frames: framesPerLevel*DefaultMsgpackDepth + callerFrames, depth: DefaultMsgpackDepth}
	for b.Loop() {
		w.next = 0
		if err := w.guard(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTypedCheck is what the typed check adds to a decode: a cache
// lookup for a type without maps, a walk of the bytes for one with maps.
func BenchmarkTypedCheck(b *testing.B) {
	type flat struct {
		ID   int64
		Name string
		Tags []string
		Data []byte
	}
	type withMap struct {
		ID    int64
		Name  string
		Tags  []string
		Attrs map[string]string
		Data  []byte
	}
	items := make([]withMap, 64)
	for i := range items {
		items[i] = withMap{ID: int64(i), Name: "xxxxxxxxxxxxxxxxxxxx", Tags: []string{"t"}, Attrs: map[string]string{"k": "v"}, Data: []byte("0123456789")}
	}
	for _, c := range []struct {
		name string
		v    any
		into any
	}{
		{"struct-nomap", flat{ID: 42, Name: "widget", Tags: []string{"a", "b"}}, new(flat)},
		{"struct-map", withMap{ID: 42, Name: "widget", Tags: []string{"a", "b"}, Attrs: map[string]string{"k": "v"}}, new(withMap)},
		{"64-structs-map", items, new([]withMap)},
	} {
		data, err := Msgpack.Marshal(c.v)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := checkTyped(data, c.into); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
