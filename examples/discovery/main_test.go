package main

import (
	"strings"
	"testing"

	"github.com/spmesh/spmesh/internal/testutil"
)

func TestMain(m *testing.M) {
	testutil.VerifyTestMain(m)
}

// TestRun runs the example and checks what it prints.
func TestRun(t *testing.T) {
	if got, want := testutil.Stdout(t, main), "hello peer-b #3, from peer-a"; !strings.Contains(got, want) {
		t.Fatalf("output: got %q, want it to contain %q", got, want)
	}
}
