package main

import (
	"io"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestRun runs the example and checks what it prints.
func TestRun(t *testing.T) {
	if got, want := capture(t, main), "at least once: 6 jobs acked, 1 nacked and delivered again; img-03 took 2 attempts"; !strings.Contains(got, want) {
		t.Fatalf("output: got %q, want it to contain %q", got, want)
	}
}

// capture returns what f writes to os.Stdout.
func capture(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	out := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		out <- string(b)
	}()
	defer func() {
		os.Stdout = stdout
	}()
	f()
	w.Close()
	return <-out
}
