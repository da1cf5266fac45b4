package sock

import (
	"bytes"
	"testing"
)

// TestCopyBody checks the small-body blocks: copies are exact, never share
// capacity with a neighbour, and large or empty bodies get their own copy.
func TestCopyBody(t *testing.T) {
	var slab []byte
	var got [][]byte
	for i := range 3 * slabSize / 100 {
		b := bytes.Repeat([]byte{byte(i)}, 100)
		c := copyBody(&slab, b)
		if !bytes.Equal(c, b) || cap(c) != len(c) {
			t.Fatalf("copy %d: got len %d cap %d, want an exact copy with cap = len", i, len(c), cap(c))
		}
		got = append(got, c)
	}
	_ = append(got[0], 0xff) // must not write over got[1]
	for i, c := range got {
		if c[0] != byte(i) || c[len(c)-1] != byte(i) {
			t.Fatalf("copy %d changed after later copies: got %d..%d, want %d", i, c[0], c[len(c)-1], i)
		}
	}
	big := make([]byte, slabMax+1)
	if c := copyBody(&slab, big); len(c) != len(big) || &c[0] == &slab[:cap(slab)][0] {
		t.Fatalf("large body: got len %d, want %d in its own allocation", len(c), len(big))
	}
	if c := copyBody(&slab, []byte{}); c != nil {
		t.Fatalf("empty body: got %v, want nil", c)
	}
}
