package discovery

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/spmesh/spmesh"
)

func testEndpoints(k int) []spmesh.Endpoint {
	var eps []spmesh.Endpoint
	for i := range k {
		eps = append(eps, spmesh.Endpoint{Service: fmt.Sprintf("service-%02d", i), Role: spmesh.RoleReplier,
			Addr: fmt.Sprintf("tcp://10.0.0.5:%d", 7000+i), Node: "n"})
	}
	sortEndpoints(eps)
	return eps
}

func TestMetaInlineAndOverflow(t *testing.T) {
	for _, k := range []int{0, 1, 5, 12, 50, MaxEndpoints} {
		eps := testEndpoints(k)
		b := encodeMeta(42, eps, flagLeaving, metaLimit)
		if len(b) > metaLimit {
			t.Fatalf("%d endpoints: got %d bytes of metadata, want at most %d", k, len(b), metaLimit)
		}
		m, err := decodeMeta("n", b)
		if err != nil {
			t.Fatalf("%d endpoints: %v", k, err)
		}
		if m.gen != 42 || m.count != k || m.flags != flagLeaving {
			t.Fatalf("%d endpoints: got gen %d count %d flags %d, want 42 %d %d", k, m.gen, m.count, m.flags, k, flagLeaving)
		}
		if m.inline && !slices.Equal(m.eps, eps) {
			t.Fatalf("%d endpoints inline: got %v, want %v", k, m.eps, eps)
		}
		if k >= 50 && m.inline {
			t.Fatalf("%d endpoints: got them inline in %d bytes, want overflow", k, len(b))
		}
		if k <= 5 && !m.inline {
			t.Fatalf("%d endpoints: got overflow, want inline", k)
		}
		var rb bytes.Buffer
		encodeRecords(&rb, "n", 42, eps)
		node, gen, got, err := decodeRecords(rb.Bytes())
		if err != nil || node != "n" || gen != 42 || !slices.Equal(got, eps) {
			t.Fatalf("%d endpoints records: got %s %d %d endpoints %v, want n 42 %d", k, node, gen, len(got), err, k)
		}
	}
}

func TestMetaDecodeHostile(t *testing.T) {
	good := encodeMeta(1, testEndpoints(3), 0, metaLimit)
	var rb bytes.Buffer
	encodeRecords(&rb, "n", 1, testEndpoints(3))
	for _, b := range append(hostile(good), hostile(rb.Bytes())...) {
		decodeMeta("n", b)
		decodeRecords(b)
		decodeRequest(b)
	}
	for _, b := range hostile(encodeRequest("label", "n", make([]byte, 16))) {
		decodeRequest(b)
	}
}

// hostile returns truncations and bit flips of b.
func hostile(b []byte) [][]byte {
	var out [][]byte
	for i := range b {
		out = append(out, b[:i])
		f := bytes.Clone(b)
		f[i] ^= 0xff
		out = append(out, f)
	}
	return append(out, []byte{1, 0x94, 0xdd, 0xff, 0xff, 0xff, 0xff}, []byte{1, 0x93, 1, 1, 0xdc, 0xff, 0xff})
}

func FuzzDecode(f *testing.F) {
	f.Add(encodeMeta(1, testEndpoints(3), 0, metaLimit))
	f.Add(encodeMeta(1, testEndpoints(50), 0, metaLimit))
	var rb bytes.Buffer
	encodeRecords(&rb, "n", 1, testEndpoints(3))
	f.Add(rb.Bytes())
	f.Add(encodeRequest("label", "me", make([]byte, 16)))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := decodeMeta("n", b); err == nil && m.inline && len(m.eps) != m.count {
			t.Fatalf("inline metadata: got %d endpoints, count %d", len(m.eps), m.count)
		}
		if _, _, eps, err := decodeRecords(b); err == nil && len(eps) > MaxEndpoints {
			t.Fatalf("records: got %d endpoints, want at most %d", len(eps), MaxEndpoints)
		}
		if _, _, c, err := decodeRequest(b); err == nil && len(c) != 16 {
			t.Fatalf("request: got a challenge of %d bytes, want 16", len(c))
		}
	})
}
