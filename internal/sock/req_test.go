package sock_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/testutil"
	"go.nanomsg.org/mangos/v3"
)

// msg returns a request message with body s.
func msg(s string) *sock.Frame {
	m := sock.NewFrame(len(s))
	m.Body = append(m.Body, s...)
	return m
}

// dispatcher opens a Dispatcher socket connected to n mangos REP sockets
// (plain SP peers) over TCP.
func dispatcher(t *testing.T, n int) (*sock.Socket, *sock.Dispatch, []*sock.Socket) {
	t.Helper()
	rq := open(t, sock.Dispatcher, sock.Wiring{})
	var reps []*sock.Socket
	for range n {
		rep := open(t, sock.Rep, sock.Wiring{})
		addr, err := rep.Listen("tcp://127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := rq.Dial(addr); err != nil {
			t.Fatal(err)
		}
		reps = append(reps, rep)
	}
	testutil.Eventually(t, 10*time.Second, peers(rq, n))
	return rq, sock.DispatchOf(rq), reps
}

// A plain SP REP peer serves the Dispatcher; a peer at its credit gets no
// more until it answers: the next request waits at the requester.
func TestDispatchCreditAndForeignRep(t *testing.T) {
	rq := open(t, sock.Dispatcher, sock.Wiring{})
	d := sock.DispatchOf(rq)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := d.Send(ctx, msg("x"), 0, false); !errors.Is(err, mangos.ErrNoPeers) {
		t.Fatalf("no peer: got %v, want ErrNoPeers", err)
	}
	rq.Close()

	_, d, reps := dispatcher(t, 1)
	d.SetDefaultCredit(2)
	t1, err := d.Send(ctx, msg("a"), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer t1.Release()
	t2, err := d.Send(ctx, msg("b"), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer t2.Release()
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if _, err := d.Send(short, msg("c"), 0, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third request to a peer of credit 2: got %v, want it to wait until its ctx ends", err)
	}
	if p := d.Peers(); len(p) != 1 || p[0].InFlight != 2 || p[0].Credit != 2 {
		t.Fatalf("peers: got %+v, want one with 2 in flight, credit 2", p)
	}
	// The REP peer answers the first request (echoing the SP header).
	b, err := sock.Mangos(reps[0]).Recv()
	if err != nil || string(b) != "a" {
		t.Fatalf("rep got %q %v, want a", b, err)
	}
	if err := sock.Mangos(reps[0]).Send([]byte("re:a")); err != nil {
		t.Fatal(err)
	}
	rep, err := t1.Wait(ctx, 0)
	if err != nil || string(rep.Body) != "re:a" {
		t.Fatalf("reply: got %v %v, want re:a", rep, err)
	}
	rep.Free()
	t3, err := d.Send(ctx, msg("c"), 0, false) // room again
	if err != nil {
		t.Fatal(err)
	}
	t3.Release()
	if _, err := t2.Wait(ctx, 20*time.Millisecond); !errors.Is(err, mangos.ErrRecvTimeout) {
		t.Fatalf("unanswered request: got %v, want ErrRecvTimeout", err)
	}
}

// A request that avoids a peer goes to another one with room; sequential
// requests over idle peers go round robin.
func TestDispatchAvoidAndRoundRobin(t *testing.T) {
	_, d, _ := dispatcher(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seen := map[uint32]int{}
	for range 6 {
		tk, err := d.Send(ctx, msg("x"), 0, false)
		if err != nil {
			t.Fatal(err)
		}
		seen[tk.Pipe()]++
		tk.Release()
	}
	if len(seen) != 3 {
		t.Fatalf("6 sequential requests went to %v, want 2 on each of 3 peers", seen)
	}
	for p, n := range seen {
		if n != 2 {
			t.Fatalf("6 sequential requests went to %v, want 2 on each of 3 peers", seen)
		}
		for range 3 {
			tk, err := d.Send(ctx, msg("y"), p, false)
			if err != nil {
				t.Fatal(err)
			}
			if tk.Pipe() == p {
				t.Fatalf("request avoiding peer %d went to it", p)
			}
			tk.Release()
		}
	}
}

// Close ends requests waiting for room with ErrClosed.
func TestDispatchCloseWakesWaiters(t *testing.T) {
	rq, d, _ := dispatcher(t, 1)
	d.SetDefaultCredit(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tk, err := d.Send(ctx, msg("a"), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Release()
	done := make(chan error, 1)
	go func() {
		_, err := d.Send(ctx, msg("b"), 0, false)
		done <- err
	}()
	rq.Close()
	if err := <-done; !errors.Is(err, mangos.ErrClosed) {
		t.Fatalf("waiting request: got %v, want ErrClosed", err)
	}
	if _, err := tk.Wait(ctx, 0); !errors.Is(err, mangos.ErrClosed) {
		t.Fatalf("request in flight: got %v, want ErrClosed", err)
	}
}

// A peer that reports requests running for others (SetLoad, from a
// worker's ack) counts them as load and has them taken off its credit,
// down to 1; a report of 0 gives the room back. Every peer's address is
// known as soon as it is connected.
func TestDispatchLoad(t *testing.T) {
	_, d, reps := dispatcher(t, 2)
	d.SetDefaultCredit(4)
	for _, p := range d.Peers() {
		if p.Addr == "" {
			t.Fatalf("peers: got %+v, want every address known", d.Peers())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// answer has the REP peer holding request body answer it (the others
	// read theirs, which stay unanswered), and waits for the reply to tk.
	answer := func(tk *sock.Ticket, body string) {
		t.Helper()
		for _, r := range reps {
			m := sock.Mangos(r)
			if err := m.SetOption(mangos.OptionRecvDeadline, 20*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if b, err := m.Recv(); err == nil && string(b) == body {
				if err := m.Send([]byte("re:" + body)); err != nil {
					t.Fatal(err)
				}
			}
		}
		reply, err := tk.Wait(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		reply.Free()
	}
	// One request, answered: its peer then reports 3 requests running,
	// none of them ours.
	tk, err := d.Send(ctx, msg("a"), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	busy := tk.Pipe()
	answer(tk, "a")
	tk.SetLoad(3)
	tk.Release()

	// Five requests: the idle peer takes them until its load equals the
	// busy one's (3 + 0), then each gets its turn, the busy one at most
	// 4 - 3 = 1; a sixth waits for room.
	var held []*sock.Ticket
	defer func() {
		for _, tk := range held {
			tk.Release()
		}
	}()
	perPipe := map[uint32]int{}
	var onBusy *sock.Ticket
	var busyBody string
	for i := range 5 {
		tk, err := d.Send(ctx, msg(fmt.Sprint("x", i)), 0, false)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, tk)
		perPipe[tk.Pipe()]++
		if tk.Pipe() == busy {
			onBusy, busyBody = tk, fmt.Sprint("x", i)
		}
	}
	if perPipe[busy] != 1 || len(perPipe) != 2 {
		t.Fatalf("5 requests went %v, want 1 to the busy peer %d and 4 to the other", perPipe, busy)
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if _, err := d.Send(short, msg("y"), 0, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sixth request: got %v, want it to wait for room", err)
	}
	// A request waits (or comes later); the busy peer answers, reporting
	// nothing running: its whole credit is free again, and the request
	// goes there (the other peer is at its credit).
	done := make(chan *sock.Ticket, 1)
	go func() {
		tk, err := d.Send(ctx, msg("z"), 0, false)
		if err != nil {
			t.Error(err)
		}
		done <- tk
	}()
	answer(onBusy, busyBody)
	onBusy.SetLoad(0)
	select {
	case tk := <-done:
		if tk == nil {
			t.FailNow()
		}
		held = append(held, tk)
		if tk.Pipe() != busy {
			t.Fatalf("waiting request went to peer %d, want the one no longer busy, %d", tk.Pipe(), busy)
		}
	case <-ctx.Done():
		t.Fatal("the waiting request got no room once the busy peer reported none running")
	}
}
