package testutil

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
)

// Pattern describes one socket type to the conformance suite.
type Pattern struct {
	// Open builds the socket under test, wired to addr (it listens or dials
	// as its role does), with no counterpart connected.
	Open func(t *testing.T, addr string) io.Closer
	// Wait makes one call on s that waits for a peer or a message (Next,
	// Request with waiting, Push, ...). With no counterpart it must block
	// until ctx ends, then return ctx.Err(); after Close, spmesh.ErrClosed.
	Wait func(ctx context.Context, s io.Closer) error
	// Invalid constructs sockets with bad options; each must fail with an
	// error wrapping spmesh.ErrInvalidOption.
	Invalid map[string]func() error
	// Hostile connects a raw mangos peer of the counterpart protocol to s
	// (listening or dialing at addr), feeds it frames, then checks that s
	// still works and counted what it discarded.
	Hostile func(t *testing.T, s io.Closer, addr string, frames [][]byte)
	// Listens says that Open listens on addr (rather than dialing it): the
	// socket must then report it in Addrs.
	Listens bool
}

// drainer and addresser are the lifecycle methods the suite checks: every
// type drains; every type that listens has Addrs.
type drainer interface {
	Drain(ctx context.Context) error
}

type addresser interface{ Addrs() []string }

// Run runs the conformance suite over inproc and TCP.
func Run(t *testing.T, p Pattern) {
	t.Run("CloseTwice", func(t *testing.T) {
		s := p.Open(t, Inproc(t))
		if err := s.Close(); err != nil {
			t.Fatalf("first Close: got %v, want nil", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: got %v, want nil", err)
		}
	})
	t.Run("UseAfterClose", func(t *testing.T) {
		s := p.Open(t, Inproc(t))
		s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Wait(ctx, s); !errors.Is(err, spmesh.ErrClosed) {
			t.Fatalf("call after Close: got %v, want ErrClosed", err)
		}
	})
	t.Run("CloseUnblocks", func(t *testing.T) {
		s := p.Open(t, Inproc(t))
		done := make(chan error, 1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		go func() { done <- p.Wait(ctx, s) }()
		s.Close()
		select {
		case err := <-done:
			if !errors.Is(err, spmesh.ErrClosed) {
				t.Fatalf("call interrupted by Close: got %v, want ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("call still blocked 10s after Close")
		}
	})
	t.Run("ContextCancel", func(t *testing.T) {
		s := p.Open(t, Inproc(t))
		defer s.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := p.Wait(ctx, s); !errors.Is(err, context.Canceled) {
			t.Fatalf("pre-cancelled ctx: got %v, want context.Canceled", err)
		}
		ctx, cancel = context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		if err := p.Wait(ctx, s); !errors.Is(err, context.Canceled) {
			t.Fatalf("ctx cancelled while waiting: got %v, want context.Canceled", err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		if err := p.Wait(ctx, s); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ctx deadline: got %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("DrainIdle", func(t *testing.T) {
		// Every type has Drain(ctx): with nothing in progress it closes
		// at once; once closed (by Drain or Close) it returns ErrClosed.
		s := p.Open(t, Inproc(t))
		defer s.Close()
		d, ok := s.(drainer)
		if !ok {
			t.Fatalf("%T has no Drain(ctx) error", s)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Drain(ctx); err != nil {
			t.Fatalf("Drain with nothing in progress: got %v, want nil", err)
		}
		if err := d.Drain(ctx); !errors.Is(err, spmesh.ErrClosed) {
			t.Fatalf("second Drain: got %v, want ErrClosed", err)
		}
		if err := p.Wait(ctx, s); !errors.Is(err, spmesh.ErrClosed) {
			t.Fatalf("call after Drain: got %v, want ErrClosed", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close after Drain: got %v, want nil", err)
		}
		s2 := p.Open(t, Inproc(t))
		s2.Close()
		if err := s2.(drainer).Drain(ctx); !errors.Is(err, spmesh.ErrClosed) {
			t.Fatalf("Drain after Close: got %v, want ErrClosed", err)
		}
	})
	t.Run("Addrs", func(t *testing.T) {
		// A type that listens tells where: Addrs holds the address it was
		// opened on when it listens, nothing when it dials.
		addr := FreeTCP(t)
		s := p.Open(t, addr)
		defer s.Close()
		a, ok := s.(addresser)
		if !ok {
			if p.Listens {
				t.Fatalf("%T listens but has no Addrs() []string", s)
			}
			t.Skip("a dialing type without Addrs")
		}
		got := a.Addrs()
		if p.Listens && (len(got) != 1 || got[0] != addr) {
			t.Fatalf("Addrs: got %v, want [%s]", got, addr)
		}
		if !p.Listens && len(got) != 0 {
			t.Fatalf("Addrs of a dialer: got %v, want none", got)
		}
	})
	t.Run("InvalidOptions", func(t *testing.T) {
		if len(p.Invalid) == 0 {
			t.Fatal("no invalid options given to the suite")
		}
		for name, f := range p.Invalid {
			if err := f(); !errors.Is(err, spmesh.ErrInvalidOption) {
				t.Errorf("%s: got %v, want ErrInvalidOption", name, err)
			}
		}
	})
	for _, tr := range []struct {
		name string
		addr func(testing.TB) string
	}{{"Inproc", Inproc}, {"TCP", FreeTCP}} {
		t.Run("HostilePeer"+tr.name, func(t *testing.T) {
			if p.Hostile == nil {
				t.Skip("no hostile peer for this socket")
			}
			addr := tr.addr(t)
			s := p.Open(t, addr)
			defer s.Close()
			p.Hostile(t, s, addr, Garbage())
		})
	}
}
