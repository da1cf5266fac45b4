package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/vmihailenco/msgpack/v5"
)

// Interop of push/pull --bare with nngcat, as real processes over TCP (see
// nngcat_test.go).

// nngcat --push feeds spmesh pull --bare: text prints as it came, binary as
// hex, and --count ends it.
func TestNNGCatPushToBarePull(t *testing.T) {
	t.Parallel()
	nngcat := testutil.NNGCat(t)
	addr := testutil.FreeTCP(t)
	pull := start(t, "pull", "--listen", addr, "--bare", "-v", "--count", "2")
	pull.waitLine(pull.stderr, `pulling messages`, waitReady)
	push := func(args ...string) {
		t.Helper()
		select {
		case r := <-testutil.StartNNGCat(t, nngcat, 30*time.Second, append([]string{"--push", "--dial", addr, "--count", "1"}, args...)...):
			if r.Err != nil {
				t.Fatalf("nngcat --push: %v: %s\n%s", r.Err, r.Stderr, pull)
			}
		case <-time.After(waitReady):
			t.Fatalf("nngcat --push still running after %v\n%s", waitReady, pull)
		}
	}
	push("--data", "hello mesh")
	pull.waitLine(pull.stdout, `^hello mesh$`, waitReady)
	f := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(f, []byte{0, 0xff, '\n'}, 0o600); err != nil {
		t.Fatal(err)
	}
	push("--file", f)
	pull.waitLine(pull.stdout, `^hex:00ff0a$`, waitReady)
	if code := pull.wait(waitReady); code != 0 {
		t.Fatalf("got pull exit %d, want 0 after --count 2\n%s", code, pull)
	}
}

// spmesh push --bare feeds nngcat --pull: each line of stdin, then a file,
// arrives as exactly its bytes, one frame each (nngcat --msgpack prints
// every frame as a msgpack bin).
func TestBarePushToNNGCatPull(t *testing.T) {
	t.Parallel()
	nngcat := testutil.NNGCat(t)
	addr := testutil.FreeTCP(t)
	done := testutil.StartNNGCat(t, nngcat, 30*time.Second, "--pull", "--listen", addr, "--msgpack", "--count", "3")
	mustRun(t, 0, "one\ntwo\n", "push", "--dial", addr, "--bare", "--timeout", "20s", "--linger", "500ms")
	f := filepath.Join(t.TempDir(), "bin")
	bin := []byte{0, 0xff, '\n', 0xc4}
	if err := os.WriteFile(f, bin, 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, 0, "", "push", "--dial", addr, "--bare", "--timeout", "20s", "--linger", "500ms", "--file", f)
	var r testutil.NNGCatRun
	select {
	case r = <-done:
	case <-time.After(waitReady):
		t.Fatalf("nngcat --pull got fewer than 3 messages within %v", waitReady)
	}
	if r.Err != nil {
		t.Fatalf("nngcat --pull: %v: %s", r.Err, r.Stderr)
	}
	var got [][]byte
	d := msgpack.NewDecoder(strings.NewReader(r.Stdout))
	for {
		b, err := d.DecodeBytes()
		if err != nil {
			break
		}
		got = append(got, b)
	}
	if want := [][]byte{[]byte("one"), []byte("two"), bin}; !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("nngcat got %q, want %q", got, want)
	}
}

// In a mesh, push --bare reaches pull --bare; a plain push finds no puller
// of its framing (the bare puller is not its kind) and exits 4.
func TestBarePushPullMesh(t *testing.T) {
	t.Parallel()
	_, addr := seed(t)
	pull := start(t, "pull", "jobs", "-j", addr, "--bare", "-v", "--count", "1")
	pull.waitLine(pull.stderr, `pulling jobs`, waitReady)
	if r := mustRun(t, 0, "", "services", "jobs", "-j", addr); !strings.Contains(r.stdout, "pull+bare") {
		t.Fatalf("services: got %q, want the puller marked pull+bare", r.stdout)
	}
	if r := mustRun(t, 0, "", "services", "jobs", "-j", addr, "--json"); !strings.Contains(r.stdout, `"bare":true`) {
		t.Fatalf("services --json: got %q, want \"bare\":true", r.stdout)
	}
	r := runCLI(t, "", "push", "jobs", "-j", addr, "--wait", "3s", "x")
	if r.code != exitNoService || !strings.Contains(r.stderr, `advertises "jobs" as puller`) {
		t.Fatalf("plain push to a bare puller: got exit %d, want %d naming the puller role\n%s", r.code, exitNoService, r)
	}
	mustRun(t, 0, "", "push", "jobs", "-j", addr, "--bare", "--wait", "20s", "--linger", "500ms", "bare job")
	if code := pull.wait(waitReady); code != 0 {
		t.Fatalf("got pull exit %d, want 0\n%s", code, pull)
	}
	pull.waitLine(pull.stdout, `^bare job$`, time.Second)
}
