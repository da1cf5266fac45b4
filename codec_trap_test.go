package spmesh_test

import (
	"bytes"
	"os"
	"os/exec"
	"runtime/debug"
	"testing"

	"github.com/spmesh/spmesh"
)

const trapChildEnv = "SPMESH_CODEC_TRAP_CHILD"

// TestPointerCycleTrap shows the limit of the encoder's cycle guard: a
// cycle only through pointers and interfaces writes nothing, so the guard
// never looks, and msgpack overflows the stack. It runs in a child process
// with a small stack limit, which must die of it.
func TestPointerCycleTrap(t *testing.T) {
	if os.Getenv(trapChildEnv) != "" {
		debug.SetMaxStack(8 << 20)
		var x any
		x = &x
		_, err := spmesh.Msgpack.Marshal(x)
		t.Logf("Marshal returned %v", err)
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPointerCycleTrap$", "-test.v")
	cmd.Env = append(os.Environ(), trapChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("stack overflow")) {
		t.Fatalf("child: got %v and %.300q, want it to die of a stack overflow", err, out)
	}
}
