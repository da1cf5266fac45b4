package sock_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/testutil"
)

// WaitPeers returns once n connections are up over TCP, and is woken by
// each connection (no polling): two dialers, waited for one by one.
func TestWaitPeersTCP(t *testing.T) {
	addr := testutil.FreeTCP(t)
	l := open(t, sock.Pull, sock.Wiring{}, sock.WithListen(addr))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.WaitPeers(ctx, 0); err != nil {
		t.Fatalf("n=0: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- l.WaitPeers(ctx, 2) }()
	open(t, sock.Push, sock.Wiring{}, sock.WithDial(addr))
	if err := l.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("WaitPeers(2) returned with one peer: %v", err)
	default:
	}
	open(t, sock.Push, sock.Wiring{}, sock.WithDial(addr))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := l.Peers(); n < 2 {
		t.Fatalf("WaitPeers(2) returned with %d peers", n)
	}
}

// When ctx ends first, the error wraps ctx's and names the last
// connection error (here: nobody listens at the dialed address).
func TestWaitPeersDeadlineExplains(t *testing.T) {
	addr := testutil.FreeTCP(t) // nobody listens there
	d := open(t, sock.Push, sock.Wiring{}, sock.WithDial(addr))
	testutil.Eventually(t, 10*time.Second, func() error {
		if d.C.LastError() == "" {
			return errors.New("no dial error recorded yet")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := d.WaitPeers(ctx, 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "last error") || !strings.Contains(err.Error(), "0 of 1") {
		t.Fatalf("error does not explain: %v", err)
	}
}

// Close wakes a waiter with ErrClosed.
func TestWaitPeersClose(t *testing.T) {
	so := open(t, sock.Pull, sock.Wiring{}, sock.WithListen(testutil.FreeTCP(t)))
	done := make(chan error, 1)
	go func() { done <- so.WaitPeers(context.Background(), 1) }()
	so.Close()
	if err := <-done; !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
}
