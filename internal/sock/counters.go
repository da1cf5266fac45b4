package sock

import "sync/atomic"

// Drop counts n messages dropped, in Dropped and in cause, one of the
// Dropped* counters of c: every drop has exactly one cause, so that
// Dropped is the sum of the causes (spmesh.Stats).
func (c *Counters) Drop(n uint64, cause *atomic.Uint64) {
	c.Dropped.Add(n)
	cause.Add(n)
}
