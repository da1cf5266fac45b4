package sock

import (
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	var h Histogram
	for _, d := range []time.Duration{
		-time.Second,          // 0: first bucket
		50 * time.Microsecond, // on the first bound: first bucket
		51 * time.Microsecond, // second
		time.Millisecond,      // on a bound: that bucket (4)
		10 * time.Second,      // last bound (16)
		10*time.Second + 1,    // above every bound (17)
	} {
		h.Observe(d)
	}
	s := h.Snapshot()
	if len(s.Counts) != len(s.Bounds)+1 {
		t.Fatalf("%d counts for %d bounds", len(s.Counts), len(s.Bounds))
	}
	want := map[int]uint64{0: 2, 1: 1, 4: 1, 16: 1, 17: 1}
	for i, c := range s.Counts {
		if c != want[i] {
			t.Errorf("bucket %d (<= %v): %d, want %d", i, s.Bounds[min(i, len(s.Bounds)-1)], c, want[i])
		}
	}
	if s.Count != 6 {
		t.Errorf("count %d, want 6", s.Count)
	}
	wantSum := 50*time.Microsecond + 51*time.Microsecond + time.Millisecond + 20*time.Second + 1
	if s.Sum != wantSum {
		t.Errorf("sum %v, want %v", s.Sum, wantSum)
	}
	for i := 1; i < len(s.Bounds); i++ {
		if s.Bounds[i] <= s.Bounds[i-1] {
			t.Fatalf("bounds not ascending at %d", i)
		}
	}
}

func TestHistogramObserveAllocs(t *testing.T) {
	var h Histogram
	if n := testing.AllocsPerRun(100, func() { h.Observe(3 * time.Millisecond) }); n != 0 {
		t.Errorf("Observe allocates %v times", n)
	}
}

// BenchmarkHistogramObserve is the per-reply cost of ReplyTime.
func BenchmarkHistogramObserve(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := 3 * time.Millisecond
		for pb.Next() {
			h.Observe(d)
		}
	})
}
