package sock

import (
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh"
)

// HistogramBounds are the upper bounds of a Histogram's buckets: 1, 2.5
// and 5 per decade from 50µs to 10s (the reply times of a LAN round trip
// to a handler that takes seconds); longer ones fall in the last bucket.
var HistogramBounds = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// Histogram counts durations in the buckets of HistogramBounds, lock-free:
// an observation costs a bucket search and two atomic adds. The zero
// value is ready to use.
type Histogram struct {
	counts [len(HistogramBounds) + 1]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

// Observe records d (a negative d counts as 0).
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	// Binary search for the first bound >= d (17 bounds: 5 steps).
	lo, hi := 0, len(HistogramBounds)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if HistogramBounds[m] < d {
			lo = m + 1
		} else {
			hi = m
		}
	}
	h.counts[lo].Add(1)
	h.sum.Add(int64(d))
}

// Snapshot returns the histogram's figures.
func (h *Histogram) Snapshot() spmesh.Histogram {
	out := spmesh.Histogram{
		Bounds: append([]time.Duration(nil), HistogramBounds[:]...),
		Counts: make([]uint64, len(h.counts)),
		Sum:    time.Duration(h.sum.Load()),
	}
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
		out.Count += out.Counts[i]
	}
	return out
}
