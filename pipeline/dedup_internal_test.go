package pipeline

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
)

// BenchmarkDedup is what WithDedup costs a worker per job: begin and end
// of a fresh id (the window full: each end evicts the oldest), then a
// duplicate's begin.
//
//	go test -run '^$' -bench Dedup -benchmem ./pipeline/
func BenchmarkDedup(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 16} {
		b.Run(itoa(size), func(b *testing.B) {
			d := newDedup(size, time.Hour)
			ctx := context.Background()
			var id spmesh.ID
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				binary.BigEndian.PutUint64(id[8:], uint64(i))
				if dup, _ := d.begin(ctx, id); dup {
					b.Fatal("fresh id taken for a duplicate")
				}
				d.end(id, true)
				if dup, _ := d.begin(ctx, id); !dup {
					b.Fatal("acked id not a duplicate")
				}
			}
		})
	}
}

func itoa(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return itoa(n>>10) + "Ki"
	}
	b := []byte{}
	for ; n > 0 || len(b) == 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// The window holds the last size ids acked, each for ttl: an older one,
// or one past its ttl, runs again.
func TestDedupWindow(t *testing.T) {
	ctx := context.Background()
	d := newDedup(3, 0)
	id := func(i byte) spmesh.ID { return spmesh.ID{15: i} }
	for i := range byte(5) {
		if dup, _ := d.begin(ctx, id(i)); dup {
			t.Fatalf("id %d: a duplicate on first sight", i)
		}
		d.end(id(i), true)
	}
	for i := range byte(5) {
		dup, _ := d.begin(ctx, id(i))
		if want := i >= 2; dup != want {
			t.Fatalf("id %d after 5 acked in a window of 3: duplicate %v, want %v", i, dup, want)
		}
		if !dup {
			d.end(id(i), false) // failed: not remembered
		}
	}
	if dup, _ := d.begin(ctx, id(0)); dup {
		t.Fatal("id 0 after a failed run: a duplicate")
	}
	d.end(id(0), false)

	d = newDedup(3, time.Nanosecond)
	d.begin(ctx, id(1))
	d.end(id(1), true)
	deadline := time.Now().Add(time.Millisecond)
	for time.Now().Before(deadline) { // the ttl passes: spin, no sleep
	}
	if dup, _ := d.begin(ctx, id(1)); dup {
		t.Fatal("id past its ttl: a duplicate")
	}
	d.end(id(1), true)
}
