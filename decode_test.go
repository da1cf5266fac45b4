package spmesh_test

import (
	"errors"
	"testing"

	"github.com/spmesh/spmesh"
)

type fakeMsg struct {
	data  []byte
	codec spmesh.Codec
}

func (m *fakeMsg) Decode(v any) error {
	if m == nil || m.codec == nil {
		return spmesh.ErrDecode
	}
	return m.codec.Unmarshal(m.data, v)
}

func TestDecode(t *testing.T) {
	data, err := spmesh.Msgpack.Marshal("hello")
	if err != nil {
		t.Fatal(err)
	}
	got, err := spmesh.Decode[string](&fakeMsg{data: data, codec: spmesh.Msgpack})
	if err != nil || got != "hello" {
		t.Errorf("Decode[string] = %q, %v, want \"hello\", nil", got, err)
	}
	if n, err := spmesh.Decode[int](&fakeMsg{data: data, codec: spmesh.Msgpack}); !errors.Is(err, spmesh.ErrDecode) {
		t.Errorf("Decode[int](a string) = %d, %v, want an error wrapping ErrDecode", n, err)
	}
	if _, err := spmesh.Decode[string](nil); !errors.Is(err, spmesh.ErrDecode) {
		t.Errorf("Decode[string](nil) = %v, want ErrDecode", err)
	}
	if _, err := spmesh.Decode[string]((*fakeMsg)(nil)); !errors.Is(err, spmesh.ErrDecode) {
		t.Errorf("Decode[string](nil *fakeMsg) = %v, want ErrDecode", err)
	}
}
