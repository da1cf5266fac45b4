package discovery

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/spmesh/spmesh"
	"github.com/vmihailenco/msgpack/v5"
)

// A bare endpoint survives the records exchange with its flag, travels as
// its role plus "+bare" (what an older decoder reads: a role it does not
// watch), and an enveloped one is unchanged on the wire.
func TestBareEndpointRecords(t *testing.T) {
	eps := []spmesh.Endpoint{
		{Service: "svc", Role: spmesh.RoleReplier, Addr: "tcp://10.0.0.5:7001", Node: "n"},
		{Service: "svc", Role: spmesh.RoleReplier, Addr: "tcp://10.0.0.5:7002", Node: "n", Bare: true},
	}
	sortEndpoints(eps)
	var rb bytes.Buffer
	encodeRecords(&rb, "n", 7, eps)
	_, _, got, err := decodeRecords(rb.Bytes())
	if err != nil || !slices.Equal(got, eps) {
		t.Fatalf("got %v, %v, want %v", got, err, eps)
	}
	// The wire form, as an older decoder reads it: three strings each.
	var raw []any
	if err := msgpack.Unmarshal(rb.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	var roles []string
	for _, e := range raw[2].([]any) {
		f := e.([]any)
		if len(f) != 3 {
			t.Fatalf("endpoint %v: got %d fields, want 3", f, len(f))
		}
		roles = append(roles, f[1].(string))
	}
	if want := []string{"rep", "rep+bare"}; !slices.Equal(roles, want) {
		t.Fatalf("got wire roles %q, want %q", roles, want)
	}
}

// The suffix is reserved: an endpoint cannot be advertised with it (it
// would come back as another endpoint), and a bare endpoint's role leaves
// room for it.
func TestBareRoleReserved(t *testing.T) {
	s := NewStatic("")
	defer s.Close()
	for _, ep := range []spmesh.Endpoint{
		{Service: "svc", Role: "rep+bare", Addr: "tcp://127.0.0.1:1"},
		{Service: "svc", Role: spmesh.Role(bytes.Repeat([]byte("r"), maxRoleLen)), Addr: "tcp://127.0.0.1:1", Bare: true},
	} {
		if err := s.Add(ep); !errors.Is(err, spmesh.ErrInvalidOption) {
			t.Fatalf("Add(%v): got %v, want ErrInvalidOption", ep, err)
		}
	}
	ok := spmesh.Endpoint{Service: "svc", Role: spmesh.RoleReplier, Addr: "tcp://127.0.0.1:1", Bare: true}
	if err := s.Add(ok); err != nil {
		t.Fatal(err)
	}
	if got := s.Endpoints(); len(got) != 1 || !got[0].Bare {
		t.Fatalf("got %v, want the bare endpoint", got)
	}
}
