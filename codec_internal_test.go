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
