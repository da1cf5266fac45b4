package pubsub

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
)

// A Publish that finds the pending buffer full waits for the flusher, and
// gives up when its ctx ends or the publisher closes.
func TestPublishWaitsForRoom(t *testing.T) {
	p, err := NewPublisher(WithListen(testutil.Inproc(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	testutil.Eventually(t, 10*time.Second, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.idle {
			return errors.New("flusher not idle yet")
		}
		// Full, with nothing for the flusher to take: it stays parked.
		p.pend.large = maxPendingBytes
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Publish(ctx, "t", 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Publish(context.Background(), "t", 2) }()
	testutil.Eventually(t, 10*time.Second, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.waiters != 1 {
			return errors.New("publish not waiting yet")
		}
		return nil
	})
	p.Close()
	if err := <-errc; !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
	if p.waiters != 0 {
		t.Fatalf("got %d waiters after close, want 0", p.waiters)
	}
}
