package main

import (
	"fmt"
	"testing"
)

// TestDemoShares runs the demo with its 3 equal workers: the summary's
// per-worker counts are each within 15% of a fair third (the producer
// spreads by credit, least outstanding first, ties round robin). The
// simulated work (a wait) dominates each job, so that the workers stay
// equal on a loaded machine, where their image processing (CPU) does not
// get equal time.
func TestDemoShares(t *testing.T) {
	const n = 90
	sum, _ := demo(t, "-n", fmt.Sprint(n), "-size", "320", "-thumb", "80", "-work", "60ms")
	checkOutput(t, sum, n)
	lo, hi, total := n, 0, 0
	for _, c := range sum.PerWorker {
		lo, hi, total = min(lo, c), max(hi, c), total+c
	}
	t.Logf("per-worker counts: %v", sum.PerWorker)
	if len(sum.PerWorker) != 3 || total != n {
		t.Fatalf("per-worker counts %v: got %d workers summing to %d, want 3 summing to %d", sum.PerWorker, len(sum.PerWorker), total, n)
	}
	if fair := float64(n) / 3; float64(lo) < 0.85*fair || float64(hi) > 1.15*fair {
		t.Errorf("per-worker counts %v: got %d to %d, want each within 15%% of %.0f", sum.PerWorker, lo, hi, fair)
	}
}
