package sock

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPendingWait(t *testing.T) {
	var p Pending
	if err := p.Wait(context.Background()); err != nil {
		t.Fatalf("empty Wait = %v", err)
	}
	p.Add(2)
	done := make(chan error, 1)
	go func() { done <- p.Wait(context.Background()) }()
	p.Done(1)
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v with work left", err)
	default:
	}
	p.Done(1)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return once the work was done")
	}
}

func TestPendingWaitCtx(t *testing.T) {
	var p Pending
	p.Add(1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
}

func TestPendingStop(t *testing.T) {
	var p Pending
	if !p.Enter() {
		t.Fatal("Enter refused before Stop")
	}
	if p.Stop() {
		t.Fatal("Stop reported stopped already")
	}
	if p.Enter() {
		t.Fatal("Enter accepted after Stop")
	}
	if p.Len() != 1 {
		t.Fatalf("Len = %d, want 1", p.Len())
	}
	p.Done(1)
	if err := p.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !p.Stop() || !p.Stopped() {
		t.Fatal("second Stop did not report stopped")
	}
}
