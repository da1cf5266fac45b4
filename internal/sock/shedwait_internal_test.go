package sock

import (
	"fmt"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
)

// The first frame that finds a queue full waits for it to drain to half
// (ShedWait): drained in time, it is queued and nothing is lost, and
// meanwhile Shed does not drop before encoding. Not drained in time, it
// is dropped and the episode goes on with no other wait, however long
// the bound: a stalled subscriber costs one wait. Every drop counted.
func TestFanoutShedWait(t *testing.T) {
	s := &Fanout{c: &Counters{}, pipes: map[uint32]*pubPipe{}, maxMsgs: 8, maxBytes: 1 << 20, shedWait: time.Hour, abort: make(chan struct{})}
	proto := fanoutProto{s}
	g := newGatePipe()
	if err := proto.AddPipe(g); err != nil {
		t.Fatal(err)
	}
	p := g.GetPrivate().(*pubPipe)
	defer func() {
		proto.RemovePipe(g)
		g.Close()
		proto.Close()
		if err := testutil.Until(5*time.Second, func() error {
			if n := s.out.n.Load(); n != 0 {
				return fmt.Errorf("%d frames still queued", n)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}()
	queued := func() int {
		p.qmu.Lock()
		defer p.qmu.Unlock()
		return p.msgs
	}
	until := func(what string, cond func() bool) {
		t.Helper()
		if err := testutil.Until(5*time.Second, func() error {
			if !cond() {
				return fmt.Errorf("not %s (queue %d, drops %d)", what, queued(), s.Drops()[""])
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	sendAsync := func() chan error {
		m := NewFrame(16)
		m.Body = append(m.Body[:0], "t\x00frame"...)
		done := make(chan error, 1)
		go func() { done <- s.Send(m, 1) }()
		return done
	}
	send := func() {
		t.Helper()
		done := sendAsync()
		until("sent without waiting", func() bool { return len(done) == 1 })
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	drops := func() uint64 { return s.Drops()[""] }

	send()
	until("taken by the sender", func() bool { return queued() == 0 })
	for range 8 {
		send()
	}
	// Full: this Send waits, holding its frame; Shed refuses meanwhile.
	waiting := sendAsync()
	until("waiting", p.held.Load)
	if s.Shed("t", 1) || drops() != 0 {
		t.Fatalf("Shed dropped while a Send waits for the queue, or drops %d: want neither", drops())
	}
	for range 4 { // down to half: the waiting frame is queued
		g.gate <- struct{}{}
	}
	until("done waiting", func() bool { return len(waiting) == 1 })
	if err := <-waiting; err != nil {
		t.Fatal(err)
	}
	if queued() != 5 || drops() != 0 || s.Shedding() {
		t.Fatalf("queue %d, drops %d, shedding %v after the queue drained in time: want 5, 0, false", queued(), drops(), s.Shedding())
	}

	// Stalled: fill it again; the wait times out, then no Send waits
	// again in that episode, even with an hour's bound.
	for range 3 {
		send()
	}
	s.mu.Lock()
	s.shedWait = 20 * time.Millisecond
	s.mu.Unlock()
	done := sendAsync()
	until("timed out", func() bool { return len(done) == 1 })
	<-done
	if drops() != 1 || !s.Shedding() || p.held.Load() {
		t.Fatalf("drops %d, shedding %v, held %v after the wait timed out: want 1, true, false", drops(), s.Shedding(), p.held.Load())
	}
	s.mu.Lock()
	s.shedWait = time.Hour
	s.mu.Unlock()
	for range 100 {
		send() // fails the test if it waits (5 s)
	}
	if !s.Shed("t", 2) || drops() != 103 {
		t.Fatalf("drops %d in the episode: want 103, every one counted", drops())
	}
}
