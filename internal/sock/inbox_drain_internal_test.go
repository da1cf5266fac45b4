package sock

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
)

// queuedInbox returns a PULL inbox over TCP holding n queued messages,
// closed when the test ends.
func queuedInbox(t *testing.T, n int) *Inbox[int] {
	t.Helper()
	so, err := Open(Pull, DefaultSettings(), Wiring{})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := so.Listen("tcp://127.0.0.1:0")
	if err != nil {
		so.Close()
		t.Fatal(err)
	}
	in := NewFrameInbox(so, func(m *Frame, emit func(int) bool) error {
		m.Free()
		emit(1)
		return nil
	})
	t.Cleanup(func() { in.Close() })
	push := testutil.DialSP(t, addr, 5<<4) // PUSH
	for range n {
		if err := push.Send([]byte("job")); err != nil {
			t.Fatal(err)
		}
	}
	if err := testutil.Until(10*time.Second, func() error {
		if got := so.C.Received.Load(); got != uint64(n) {
			return fmt.Errorf("%d of %d queued", got, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return in
}

// startDrain starts in.Drain with a 20 s ctx, which it returns with the
// channel Drain's result arrives on.
func startDrain(t *testing.T, in *Inbox[int]) (context.Context, <-chan error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	drained := make(chan error, 1)
	go func() { drained <- in.Drain(ctx) }()
	return ctx, drained
}

// waitParked waits until Drain waits on the application alone (the reader
// has stopped).
func waitParked(t *testing.T, in *Inbox[int]) {
	t.Helper()
	if err := testutil.Until(10*time.Second, func() error {
		if in.parked.Load() == 0 {
			return fmt.Errorf("Drain not waiting on the application")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// Drain returns once the application has taken, with Next, every message
// queued: Next wakes it (it does not poll when C was never handed out),
// so a Drain that is never told ends with its ctx's error instead.
func TestInboxDrainWokenByNext(t *testing.T) {
	const n = 50
	in := queuedInbox(t, n)
	ctx, drained := startDrain(t, in)
	for i := range n - 1 {
		if _, err := in.Next(ctx); err != nil {
			t.Fatalf("Next %d of %d: %v", i, n, err)
		}
	}
	// Once the reader has stopped and Drain waits on the application
	// alone, the last message taken must wake it.
	waitParked(t, in)
	if _, err := in.Next(ctx); err != nil {
		t.Fatalf("last Next: %v", err)
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain = %v, want nil: not woken when the last message was taken", err)
	}
}

// An application that first calls C after Drain has begun (a consumer
// goroutine starting late) still lets Drain end as soon as it has taken
// every message: C wakes Drain, which polls from then on, instead of
// waiting for Next's signal that never comes.
func TestInboxDrainCalledBeforeC(t *testing.T) {
	const n = 50
	in := queuedInbox(t, n)
	ctx, drained := startDrain(t, in)
	waitParked(t, in)
	got := 0
	for range in.C() {
		got++
	}
	if got != n {
		t.Fatalf("got %d messages from C, want %d", got, n)
	}
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("Drain = %v, want nil", err)
		}
	case <-ctx.Done():
		t.Fatal("Drain did not return after C was emptied: not woken by C")
	}
}
