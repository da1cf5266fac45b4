package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pipeline"
	"github.com/vmihailenco/msgpack/v5"
)

// Bare frames are for the at-most-once half only: the Producer and Worker
// refuse them, naming the option and why.
func TestBareRefusedAtLeastOnce(t *testing.T) {
	_, perr := pipeline.NewProducer(pipeline.WithBareFrames())
	_, werr := pipeline.NewWorker(pipeline.HandlerFunc(func(context.Context, *pipeline.Job) error { return nil }), pipeline.WithBareFrames())
	for _, err := range []error{perr, werr} {
		if !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), "WithBareFrames") {
			t.Fatalf("got %v, want ErrInvalidOption naming WithBareFrames", err)
		}
	}
}

// Bare on both ends: each message is the codec's bytes alone, so the
// puller's Message has no id or headers; headers fail the push; an
// enveloped frame reaches a bare puller as opaque bytes.
func TestBareBothEnds(t *testing.T) {
	addr := testutil.Inproc(t)
	pl := mustPuller(t, pipeline.WithListen(addr), pipeline.WithBareFrames())
	p := mustPusher(t, pipeline.WithDial(addr), pipeline.WithBareFrames())
	ctx := ctxT(t, 20*time.Second)
	for i := range 3 {
		if err := p.Push(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		m, err := pl.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := spmesh.Decode[int](m); err != nil || v != i {
			t.Fatalf("got %d, %v, want %d", v, err, i)
		}
		if m.ID != (spmesh.ID{}) || m.Header != nil || m.Time.IsZero() {
			t.Fatalf("got id %v, headers %v, time %v: want no id or headers, the time received", m.ID, m.Header, m.Time)
		}
	}
	err := p.PushHeader(ctx, spmesh.Header{"k": "v"}, 1)
	if !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), "bare") {
		t.Fatalf("push with headers: got %v, want ErrInvalidOption naming bare frames", err)
	}
	if err := p.PushHeader(ctx, spmesh.Header{}, 3); err != nil {
		t.Fatalf("push with empty headers: %v", err)
	}
	if m, err := pl.Next(ctx); err != nil || string(m.Data) != "\x03" {
		t.Fatalf("got %v, %v, want the bare body 03", m, err)
	}

	env := mustPusher(t, pipeline.WithDial(addr), pipeline.WithCodec(spmesh.Raw))
	if err := env.Push(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	m, err := pl.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Data) < 4 || m.Data[len(m.Data)-1] != 'x' {
		t.Fatalf("enveloped frame at a bare puller: got % x, want the whole envelope", m.Data)
	}
	if st := pl.Stats(); st.DecodeErrors != 0 || st.Received != 5 {
		t.Fatalf("got %d received, %d decode errors, want 5 and 0", st.Received, st.DecodeErrors)
	}
}

// The size limits hold without the envelope: a bare Pusher refuses a body
// over its limit (TooLarge), and a bare Puller drops a frame over its own
// (TooLarge, Dropped; over TCP the sender's connection is closed, as
// without bare frames) and takes the next.
func TestBareTooLarge(t *testing.T) {
	t.Run("inproc", func(t *testing.T) { testBareTooLarge(t, testutil.Inproc(t)) })
	t.Run("tcp", func(t *testing.T) { testBareTooLarge(t, "tcp") })
}

func testBareTooLarge(t *testing.T, addr string) {
	pl := mustPuller(t, pipeline.WithBareFrames(), pipeline.WithMaxMessageSize(64))
	addr = listen(t, pl, addr)
	small := mustPusher(t, pipeline.WithDial(addr), pipeline.WithBareFrames(), pipeline.WithCodec(spmesh.Raw), pipeline.WithMaxMessageSize(64))
	ctx := ctxT(t, 20*time.Second)
	if err := small.Push(ctx, make([]byte, 65)); !errors.Is(err, spmesh.ErrTooLarge) || small.Stats().TooLarge != 1 {
		t.Fatalf("got %v, %d too large, want ErrTooLarge counted", err, small.Stats().TooLarge)
	}
	big := mustPusher(t, pipeline.WithDial(addr), pipeline.WithBareFrames(), pipeline.WithCodec(spmesh.Raw))
	if err := big.Push(ctx, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		if st := pl.Stats(); st.TooLarge != 1 || st.Dropped != 1 {
			return fmt.Errorf("got %d too large, %d dropped, want 1 and 1", st.TooLarge, st.Dropped)
		}
		return nil
	})
	// Over TCP the oversized frame closed big's connection (a PUSH peer
	// has no reply channel); small's goes on.
	if err := small.Push(ctx, []byte("fits")); err != nil {
		t.Fatal(err)
	}
	if m, err := pl.Next(ctx); err != nil || string(m.Data) != "fits" {
		t.Fatalf("got %v, %v, want %q", m, err, "fits")
	}
	if st := pl.Stats(); st.TooLarge != 1 || st.Received != 1 {
		t.Fatalf("got %d too large, %d received, want 1 and 1", st.TooLarge, st.Received)
	}
}

// payloads are bodies no text framing survives: NUL, 0xff, newlines, empty.
var payloads = [][]byte{[]byte("hello"), {0, 0xff, '\n', 0xc4}, {}, bytes.Repeat([]byte{0xab}, 70000)}

// nngcat --push to a bare Puller: every frame arrives as exactly its bytes.
func TestNNGCatPushToBarePuller(t *testing.T) {
	nngcat := testutil.NNGCat(t)
	pl := mustPuller(t, pipeline.WithBareFrames(), pipeline.WithCodec(spmesh.Raw))
	addr := listen(t, pl, "tcp")
	ctx := ctxT(t, 30*time.Second)
	for i, want := range payloads {
		f := filepath.Join(t.TempDir(), fmt.Sprint("msg", i))
		if err := os.WriteFile(f, want, 0o600); err != nil {
			t.Fatal(err)
		}
		done := testutil.StartNNGCat(t, nngcat, 30*time.Second, "--push", "--dial", addr, "--file", f, "--count", "2")
		for range 2 {
			m, err := pl.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Data, want) {
				t.Fatalf("payload %d: got %d bytes % .16x, want %d bytes % .16x", i, len(m.Data), m.Data, len(want), want)
			}
		}
		if r := <-done; r.Err != nil {
			t.Fatalf("nngcat --push: %v: %s", r.Err, r.Stderr)
		}
	}
	if st := pl.Stats(); st.DecodeErrors != 0 || st.Received != uint64(2*len(payloads)) {
		t.Fatalf("got %d received, %d decode errors, want %d and 0", st.Received, st.DecodeErrors, 2*len(payloads))
	}
}

// A bare Pusher to nngcat --pull: nngcat prints each frame as a msgpack
// bin (--msgpack), so the exact bytes and the frame boundaries show.
func TestBarePusherToNNGCatPull(t *testing.T) {
	nngcat := testutil.NNGCat(t)
	addr := testutil.FreeTCP(t)
	done := testutil.StartNNGCat(t, nngcat, 30*time.Second, "--pull", "--listen", addr, "--msgpack", "--count", fmt.Sprint(len(payloads)))
	p := mustPusher(t, pipeline.WithDial(addr), pipeline.WithBareFrames(), pipeline.WithCodec(spmesh.Raw))
	ctx := ctxT(t, 30*time.Second)
	for _, b := range payloads {
		if err := p.Push(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	r := <-done
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
		if b == nil {
			b = []byte{}
		}
		got = append(got, b)
	}
	if !slices.EqualFunc(got, payloads, bytes.Equal) {
		t.Fatalf("nngcat got %d frames %.16x, want %d frames %.16x", len(got), got, len(payloads), payloads)
	}
}
