package spmesh_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/spmesh/spmesh"
)

func TestIDText(t *testing.T) {
	id := spmesh.ID{0: 0xab, 15: 0x01}
	b, err := json.Marshal(struct{ ID spmesh.ID }{id})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"ID":"ab000000000000000000000000000001"}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	var back struct{ ID spmesh.ID }
	if err := json.Unmarshal(b, &back); err != nil || back.ID != id {
		t.Fatalf("got %v %v, want %v", back.ID, err, id)
	}
	var bad spmesh.ID
	for _, s := range []string{"", "ab", "zz000000000000000000000000000001", "ab0000000000000000000000000000010"} {
		if err := bad.UnmarshalText([]byte(s)); !errors.Is(err, spmesh.ErrDecode) {
			t.Errorf("%q: got %v, want ErrDecode", s, err)
		}
	}
}

func TestRemoteError(t *testing.T) {
	err := error(&spmesh.RemoteError{Code: 7, Message: "nope"})
	var re *spmesh.RemoteError
	if !errors.As(err, &re) || re.Code != 7 || err.Error() != "spmesh: remote error (code 7): nope" {
		t.Fatalf("got %v, want a RemoteError with code 7", err)
	}
	var c spmesh.Coder
	if e := spmesh.Errorf(42, "x %d", 1); !errors.As(e, &c) || c.Code() != 42 || e.Error() != "x 1" {
		t.Fatalf("got %v, want a Coder with code 42", e)
	}
}

func TestRawCodec(t *testing.T) {
	b, err := spmesh.Raw.Marshal("hi")
	if err != nil || string(b) != "hi" {
		t.Fatalf("got %q %v", b, err)
	}
	if _, err := spmesh.Raw.Marshal(3); err == nil {
		t.Fatal("raw codec marshalled an int, want an error")
	}
	var s string
	if err := spmesh.Raw.Unmarshal([]byte("yo"), &s); err != nil || s != "yo" {
		t.Fatalf("got %q %v", s, err)
	}
	var n int
	if err := spmesh.Raw.Unmarshal([]byte("1"), &n); !errors.Is(err, spmesh.ErrDecode) {
		t.Fatalf("got %v, want ErrDecode", err)
	}
	if err := spmesh.Msgpack.Unmarshal([]byte{0xc1}, &n); !errors.Is(err, spmesh.ErrDecode) {
		t.Fatalf("got %v, want ErrDecode", err)
	}
	out, err := spmesh.AppendMarshal(spmesh.Msgpack, []byte("x"), map[string]int{"a": 1})
	if err != nil || string(out[:1]) != "x" {
		t.Fatalf("got %q %v", out, err)
	}
	var m map[string]int
	if err := spmesh.Msgpack.Unmarshal(out[1:], &m); err != nil || m["a"] != 1 {
		t.Fatalf("got %v %v", m, err)
	}
}
