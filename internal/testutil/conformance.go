package testutil

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
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
	// nil means WaitPeers(ctx, 1), which every type has: the call to use
	// for a serving side (Replier, Worker, Respondent), whose work happens
	// in its handler rather than in a call that blocks.
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
	// Serve, for a serving side (Replier, Worker, Respondent), checks
	// Drain and Close with a counterpart connected and a handler running;
	// nil for the other types.
	Serve *Serve
}

// Serve describes a serving side to the suite: how to open it around a
// handler the suite controls, and its counterpart.
type Serve struct {
	// Open builds the serving socket wired to addr (listening or dialing,
	// as Pattern.Open does), with a handler that calls h with its ctx and
	// answers (replies, acks) with no error when h returns nil.
	Open func(t *testing.T, addr string, h func(ctx context.Context) error) io.Closer
	// Peer opens the counterpart (Requester, Producer, Surveyor) wired to
	// the other end of addr.
	Peer func(t *testing.T, addr string) io.Closer
	// Call makes one call from peer (Request, Produce, Survey) and returns
	// nil once the serving side's answer reached it, an error otherwise.
	Call func(ctx context.Context, peer io.Closer) error
	// Proto, when set, is the counterpart's SP protocol (ProtoReq,
	// ProtoSurveyor): the suite then connects a raw SP peer of it over TCP
	// (dialing a listening side, listening for a dialing one) and asks the
	// serving side the hostile frames: each must be answered (an error
	// reply, a nack) and counted in DecodeErrors without calling the
	// handler, and a proper call must work after. 0 for a bare side, to
	// which any bytes are a request.
	Proto uint16
}

// waitPeers is every type's WaitPeers; the default Wait.
type waitPeers interface {
	WaitPeers(ctx context.Context, n int) error
}

// drainer and addresser are the lifecycle methods the suite checks: every
// type drains; every type that listens has Addrs.
type drainer interface {
	Drain(ctx context.Context) error
}

type addresser interface{ Addrs() []string }

// transports are the two the suite runs over: fresh inproc and loopback
// TCP addresses.
var transports = []struct {
	name string
	addr func(testing.TB) string
}{{"Inproc", Inproc}, {"TCP", FreeTCP}}

// Run runs the conformance suite over inproc and TCP.
func Run(t *testing.T, p Pattern) {
	if p.Wait == nil {
		p.Wait = func(ctx context.Context, s io.Closer) error {
			w, ok := s.(waitPeers)
			if !ok {
				return fmt.Errorf("%T has no WaitPeers(ctx, n) error and the pattern no Wait", s)
			}
			return w.WaitPeers(ctx, 1)
		}
	}
	// The lifecycle checks run over both transports; over inproc they keep
	// their plain names.
	for _, tr := range transports {
		sfx := tr.name
		if sfx == "Inproc" {
			sfx = ""
		}
		t.Run("CloseTwice"+sfx, func(t *testing.T) {
			s := p.Open(t, tr.addr(t))
			if err := s.Close(); err != nil {
				t.Fatalf("first Close: got %v, want nil", err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: got %v, want nil", err)
			}
		})
		t.Run("UseAfterClose"+sfx, func(t *testing.T) {
			s := p.Open(t, tr.addr(t))
			s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := p.Wait(ctx, s); !errors.Is(err, spmesh.ErrClosed) {
				t.Fatalf("call after Close: got %v, want ErrClosed", err)
			}
		})
		t.Run("CloseUnblocks"+sfx, func(t *testing.T) {
			s := p.Open(t, tr.addr(t))
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
		t.Run("ContextCancel"+sfx, func(t *testing.T) {
			s := p.Open(t, tr.addr(t))
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
		t.Run("DrainIdle"+sfx, func(t *testing.T) {
			// Every type has Drain(ctx): with nothing in progress it closes
			// at once; once closed (by Drain or Close) it returns ErrClosed.
			// Stats().Draining is false until Drain, then true, also once
			// Drain has closed the socket.
			s := p.Open(t, tr.addr(t))
			defer s.Close()
			d, ok := s.(drainer)
			if !ok {
				t.Fatalf("%T has no Drain(ctx) error", s)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			draining := func() bool {
				st, err := CommonStats(s)
				if err != nil {
					t.Fatal(err)
				}
				return st.Draining
			}
			if draining() {
				t.Fatal("Stats().Draining before Drain: got true, want false")
			}
			if err := d.Drain(ctx); err != nil {
				t.Fatalf("Drain with nothing in progress: got %v, want nil", err)
			}
			if !draining() {
				t.Fatal("Stats().Draining after Drain closed the socket: got false, want true")
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
			s2 := p.Open(t, tr.addr(t))
			s2.Close()
			if err := s2.(drainer).Drain(ctx); !errors.Is(err, spmesh.ErrClosed) {
				t.Fatalf("Drain after Close: got %v, want ErrClosed", err)
			}
		})
	}
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
	for _, tr := range transports {
		t.Run("HostilePeer"+tr.name, func(t *testing.T) {
			switch {
			case p.Hostile != nil:
				addr := tr.addr(t)
				s := p.Open(t, addr)
				defer s.Close()
				p.Hostile(t, s, addr, Garbage())
			case p.Serve != nil && p.Serve.Proto != 0:
				if tr.name != "TCP" {
					t.Skip("the raw SP peer speaks TCP")
				}
				hostileRequests(t, p.Serve, tr.addr(t), p.Listens)
			default:
				t.Skip("no hostile peer for this socket")
			}
		})
	}
	if p.Serve != nil {
		for _, tr := range transports {
			t.Run("Serve"+tr.name, func(t *testing.T) { serveChecks(t, p.Serve, tr.addr) })
		}
	}
}

// serveChecks are the serving side's checks with a counterpart connected
// and a handler running: Drain lets the handler finish and its answer
// reach the peer; so does the peer's own Drain; the peer's Close ends its
// call with ErrClosed; Close is immediate and cancels the handler's ctx.
// inCall opens the serving side with a held handler and its peer at a new
// address, and starts one call, returning once the handler runs: the
// setup of every serving check. Both sockets close, the handler is
// released and ctx is cancelled when the test ends.
func inCall(t *testing.T, sv *Serve, newAddr func(testing.TB) string) (s, peer io.Closer, h *held, ctx context.Context, cancel context.CancelFunc, called <-chan error) {
	t.Helper()
	addr := newAddr(t)
	h = newHeld()
	t.Cleanup(h.free)
	s = sv.Open(t, addr, h.handler)
	t.Cleanup(func() { s.Close() })
	peer = sv.Peer(t, addr)
	t.Cleanup(func() { peer.Close() })
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	called = goErr(func() error { return sv.Call(ctx, peer) })
	h.waitStarted(t, called)
	return s, peer, h, ctx, cancel, called
}

func serveChecks(t *testing.T, sv *Serve, newAddr func(testing.TB) string) {
	t.Run("DrainFinishesHandler", func(t *testing.T) {
		s, _, h, ctx, _, called := inCall(t, sv, newAddr)
		d, ok := s.(drainer)
		if !ok {
			t.Fatalf("%T has no Drain(ctx) error", s)
		}
		drained := goErr(func() error { return d.Drain(ctx) })
		// Drain must wait for the handler. Watching for a while cannot
		// fail a correct Drain; it catches one that returns early.
		select {
		case err := <-drained:
			t.Fatalf("Drain returned (%v) while a handler was running, want it to wait", err)
		case <-time.After(100 * time.Millisecond):
		}
		close(h.release)
		if err := within(t, h.ctxErr, "the released handler"); err != nil {
			t.Fatalf("handler ctx during Drain: got %v, want not done", err)
		}
		if err := within(t, called, "the call"); err != nil {
			t.Fatalf("call whose handler Drain let finish: got %v, want its answer", err)
		}
		if err := within(t, drained, "Drain"); err != nil {
			t.Fatalf("Drain: got %v, want nil", err)
		}
	})
	t.Run("PeerDrainWaitsForCall", func(t *testing.T) {
		// The calling side's Drain is graceful too: it waits for the
		// call in progress, whose answer still arrives.
		_, peer, h, ctx, _, called := inCall(t, sv, newAddr)
		d, ok := peer.(drainer)
		if !ok {
			t.Fatalf("%T has no Drain(ctx) error", peer)
		}
		drained := goErr(func() error { return d.Drain(ctx) })
		select {
		case err := <-drained:
			t.Fatalf("%T.Drain returned (%v) while its call was in progress, want it to wait", peer, err)
		case <-time.After(100 * time.Millisecond):
		}
		close(h.release)
		if err := within(t, called, "the call"); err != nil {
			t.Fatalf("call in progress at the caller's Drain: got %v, want its answer", err)
		}
		if err := within(t, drained, "the caller's Drain"); err != nil {
			t.Fatalf("%T.Drain: got %v, want nil", peer, err)
		}
	})
	t.Run("PeerCloseEndsCall", func(t *testing.T) {
		// The calling side's Close is immediate: the call in progress
		// ends with ErrClosed, without waiting for the handler.
		_, peer, _, _, _, called := inCall(t, sv, newAddr)
		peer.Close() // its own error is checked by CloseTwice
		if err := within(t, called, "the call, its caller closed"); !errors.Is(err, spmesh.ErrClosed) {
			t.Fatalf("call in progress at the caller's Close: got %v, want ErrClosed", err)
		}
	})
	t.Run("CloseCancelsHandler", func(t *testing.T) {
		s, _, h, _, cancel, called := inCall(t, sv, newAddr)
		if err := within(t, goErr(s.Close), "Close with a handler running"); err != nil {
			t.Fatalf("Close: got %v, want nil", err)
		}
		// Close waits for the handlers that heed their ctx: by now this
		// one has seen it end.
		select {
		case err := <-h.ctxErr:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("handler ctx after Close: got %v, want context.Canceled", err)
			}
		default:
			t.Fatal("Close returned before the running handler saw its ctx cancelled")
		}
		cancel()
		if err := within(t, called, "the call, its ctx cancelled"); err == nil {
			t.Fatal("call whose handler Close cancelled: got an answer, want an error")
		}
	})
}

// within receives from c, failing the test when nothing comes in 20s
// (what names the awaited end).
func within(t *testing.T, c <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("%s still blocked after 20s", what)
		return nil
	}
}

// hostileRequests asks a serving side the hostile frames through a raw
// SP peer over TCP: each is answered and counted as a decode error, the
// handler never sees one, and a proper call works afterwards.
func hostileRequests(t *testing.T, sv *Serve, addr string, listens bool) {
	var calls atomic.Int64
	s := sv.Open(t, addr, func(context.Context) error { calls.Add(1); return nil })
	defer s.Close()
	var raw *RawSP
	if listens {
		raw = DialSP(t, addr, sv.Proto)
	} else {
		raw = ListenSP(t, addr, sv.Proto)
	}
	before, err := CommonStats(s)
	if err != nil {
		t.Fatal(err)
	}
	frames := Garbage()
	for i, f := range frames {
		id := 0x80000000 | uint32(i+1)
		if err := raw.Send(f, id); err != nil {
			t.Fatalf("hostile frame %d: %v", i, err)
		}
		b, err := raw.Recv(10 * time.Second)
		if err != nil {
			t.Fatalf("hostile frame %d (% x): got %v, want an answer (an error reply)", i, f, err)
		}
		if len(b) < 4 || binary.BigEndian.Uint32(b) != id {
			t.Fatalf("answer to hostile frame %d: got % x, want SP id %08x first", i, b, id)
		}
	}
	Eventually(t, 10*time.Second, func() error {
		st, err := CommonStats(s)
		if err != nil {
			return err
		}
		if got := st.DecodeErrors - before.DecodeErrors; got != uint64(len(frames)) {
			return fmt.Errorf("%T DecodeErrors after %d hostile frames: got %d, want %d", s, len(frames), got, len(frames))
		}
		return nil
	})
	if n := calls.Load(); n != 0 {
		t.Fatalf("handler calls for hostile frames: got %d, want 0", n)
	}
	raw.C.Close()
	peer := sv.Peer(t, addr)
	defer peer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sv.Call(ctx, peer); err != nil {
		t.Fatalf("proper call after the hostile frames: got %v, want its answer", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler calls: got %d, want 1 (the proper call)", n)
	}
}

// held is a handler that the suite holds until it releases it or the
// handler's ctx ends.
type held struct {
	started chan struct{}
	release chan struct{}
	ctxErr  chan error // the handler's ctx.Err() when it returned
}

func newHeld() *held {
	return &held{started: make(chan struct{}, 1), release: make(chan struct{}), ctxErr: make(chan error, 1)}
}

func (h *held) handler(ctx context.Context) error {
	select {
	case h.started <- struct{}{}:
	default:
	}
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	err := ctx.Err()
	select {
	case h.ctxErr <- err:
	default:
	}
	return err
}

// free releases the handler if the test did not (a failed test).
func (h *held) free() {
	select {
	case <-h.release:
	default:
		close(h.release)
	}
}

// waitStarted waits until the handler runs, failing the test if the call
// ends first or nothing happens within the deadline.
func (h *held) waitStarted(t *testing.T, called <-chan error) {
	t.Helper()
	select {
	case <-h.started:
	case err := <-called:
		t.Fatalf("call ended (%v) before its handler ran", err)
	case <-time.After(20 * time.Second):
		t.Fatal("handler not called within 20s")
	}
}

// goErr runs f in a goroutine and hands over its error.
func goErr(f func() error) <-chan error {
	c := make(chan error, 1)
	go func() { c <- f() }()
	return c
}
