package testutil

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/wire"
)

// Sender is what the slow-reader drain tests need of a sending socket
// (pubsub.Publisher, pipeline.Pusher).
type Sender interface {
	WaitPeers(ctx context.Context, n int) error
	Drain(ctx context.Context) error
	Stats() spmesh.Stats
}

// SlowDrain is the Drain tests of a sender whose one reader is slow: a
// raw SP peer with a 4 KiB receive buffer that reads nothing until asked,
// so that what it leaves unread backs up into the sender's queue.
type SlowDrain struct {
	Proto uint16    // the raw reader's SP protocol (SUB, PULL)
	Kind  wire.Kind // the wire kind of the messages sent; other frames are skipped
	// Open opens the sender listening on addr with queue room for n
	// messages per reader; it is closed at the end of the test.
	Open func(t *testing.T, addr string, n int) Sender
	// Send sends one message with body.
	Send func(ctx context.Context, s Sender, body []byte) error
	// Settled: when an expired Drain returns, every message is already
	// either Sent or Dropped (see Expires).
	Settled bool
}

// Fill opens the sender, connects the slow reader and sends it n messages
// of size bytes; it returns both, the reader not having read anything.
func (d SlowDrain) Fill(t *testing.T, n, size int) (Sender, *RawSP) {
	t.Helper()
	addr := FreeTCP(t)
	s := d.Open(t, addr, n)
	raw := DialSPBuffer(t, addr, d.Proto, 4<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, size)
	for i := range n {
		if err := d.Send(ctx, s, body); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	return s, raw
}

// Delivers: with n messages of size bytes queued for the slow reader
// (pick more than the kernel buffers hold), Drain started before the
// reader reads still delivers every one, returns nil once they are
// written, and leaves the sender closed (Send and a second Drain return
// ErrClosed).
func (d SlowDrain) Delivers(t *testing.T, n, size int) {
	t.Helper()
	s, raw := d.Fill(t, n, size)
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		drained <- s.Drain(ctx)
	}()
	// The reader reads only now, after Drain started: every message
	// queued for it must still arrive.
	for got := 0; got < n; {
		b, err := raw.Recv(10 * time.Second)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v (%+v)", got, n, err, s.Stats())
		}
		var env wire.Msg
		if err := wire.Decode(b, &env); err != nil {
			t.Fatalf("frame after %d messages: %v", got, err)
		}
		if env.Kind == d.Kind {
			got++
		}
	}
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("Drain: got %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Drain still running 30s after the reader read everything")
	}
	if st := s.Stats(); st.Dropped != 0 || st.Sent != uint64(n) {
		t.Fatalf("Stats: got Sent %d Dropped %d, want %d and 0", st.Sent, st.Dropped, n)
	}
	if err := d.Send(context.Background(), s, []byte{1}); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("send after Drain: got %v, want ErrClosed", err)
	}
	if err := s.Drain(context.Background()); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("second Drain: got %v, want ErrClosed", err)
	}
}

// Expires: with n messages of size bytes queued for a reader that never
// reads, Drain returns the context's error when it ends, the sender is
// closed anyway, and what was left queued is counted in Dropped (cause
// closed): at once when Settled, else eventually.
func (d SlowDrain) Expires(t *testing.T, n, size int) {
	t.Helper()
	s, _ := d.Fill(t, n, size)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain: got %v, want DeadlineExceeded", err)
	}
	if err := d.Send(context.Background(), s, []byte{1}); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("send after Drain: got %v, want ErrClosed", err)
	}
	counted := func() error {
		st := s.Stats()
		if st.Dropped == 0 || st.DroppedClosed != st.Dropped {
			return fmt.Errorf("queued messages not counted as dropped (closed): %+v", st)
		}
		if d.Settled && st.Sent+st.Dropped != uint64(n) {
			return fmt.Errorf("Sent %d + Dropped %d: want the %d messages", st.Sent, st.Dropped, n)
		}
		return nil
	}
	if d.Settled {
		if err := counted(); err != nil {
			t.Fatalf("Stats after the expired Drain: %v", err)
		}
		return
	}
	Eventually(t, 10*time.Second, counted)
}

// DrainRacesClose calls Drain twice and Close at once on s (idle):
// whichever closes first wins, and every call returns nil or ErrClosed.
func DrainRacesClose(t *testing.T, s interface {
	Drain(ctx context.Context) error
	Close() error
}) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 2 {
		wg.Go(func() { errs[i] = s.Drain(context.Background()) })
	}
	wg.Go(func() { errs[2] = s.Close() })
	wg.Wait()
	for i, err := range errs {
		if err != nil && !errors.Is(err, spmesh.ErrClosed) {
			t.Fatalf("call %d (Drain, Drain, Close): got %v, want nil or ErrClosed", i, err)
		}
	}
}
