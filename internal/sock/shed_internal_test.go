package sock

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol"
)

// gatePipe is a connection whose writes each wait for a token on gate: a
// subscriber that reads only when told to.
type gatePipe struct {
	gate   chan struct{}
	closed chan struct{}
	once   sync.Once
	mu     sync.Mutex
	priv   any
}

func newGatePipe() *gatePipe {
	return &gatePipe{gate: make(chan struct{}), closed: make(chan struct{})}
}

func (g *gatePipe) ID() uint32 { return 1 }
func (g *gatePipe) Close() error {
	g.once.Do(func() { close(g.closed) })
	return nil
}
func (g *gatePipe) SendMsg(m *mangos.Message) error {
	select {
	case <-g.gate:
		m.Free()
		return nil
	case <-g.closed:
		return protocol.ErrClosed
	}
}
func (g *gatePipe) RecvMsg() *mangos.Message {
	<-g.closed
	return nil
}
func (g *gatePipe) SetPrivate(v any) {
	g.mu.Lock()
	g.priv = v
	g.mu.Unlock()
}
func (g *gatePipe) GetPrivate() any {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.priv
}

// A queue that filled sheds: it drops every new frame, and Shed drops
// messages before they are framed, until it has drained to half its
// bounds; every drop is counted, exactly.
func TestFanoutSheds(t *testing.T) {
	s := &Fanout{c: &Counters{}, pipes: map[uint32]*pubPipe{}, maxMsgs: 8, maxBytes: 1 << 20, abort: make(chan struct{})}
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
	waitQueued := func(want int) {
		t.Helper()
		if err := testutil.Until(5*time.Second, func() error {
			if got := queued(); got != want {
				return fmt.Errorf("queue holds %d messages, want %d", got, want)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	send := func() {
		t.Helper()
		m := NewFrame(16)
		m.Body = append(m.Body[:0], "t\x00frame"...)
		if err := s.Send(m, 1); err != nil {
			t.Fatal(err)
		}
	}
	drops := func() uint64 { return s.Drops()[""] }

	send()
	waitQueued(0) // the sender holds it, waiting for the subscriber
	for range 8 {
		send()
	}
	if s.Shedding() || s.Shed("t", 1) || drops() != 0 {
		t.Fatalf("shedding %v, drops %d with room left: want neither", s.Shedding(), drops())
	}
	send() // full
	if !s.Shedding() || drops() != 1 {
		t.Fatalf("shedding %v, drops %d after a frame past the bound: want true, 1", s.Shedding(), drops())
	}
	if !s.Shed("t", 3) || drops() != 4 {
		t.Fatalf("Shed refused, or drops %d: want 4", drops())
	}
	if s.Shed("u", 1) != true {
		t.Fatal("Shed refused a topic the subscriber wants (it has no interest frame: all)")
	}
	// Two frames taken: room for two, but the queue sheds until it is
	// down to half.
	g.gate <- struct{}{}
	g.gate <- struct{}{}
	waitQueued(6)
	send()
	if !s.Shedding() || drops() != 6 {
		t.Fatalf("shedding %v, drops %d with the queue above half: want true, 6", s.Shedding(), drops())
	}
	g.gate <- struct{}{}
	g.gate <- struct{}{}
	waitQueued(4)
	if s.Shedding() || s.Shed("t", 1) {
		t.Fatal("still shedding at half the bound")
	}
	send()
	if queued() != 5 || drops() != 6 {
		t.Fatalf("queue %d, drops %d after shedding ended: want 5, 6", queued(), drops())
	}
}

// wantsTopic tells from the topic alone whether a subscriber's interest
// covers it, and says when it cannot.
func TestWantsTopic(t *testing.T) {
	for _, c := range []struct {
		interest   []string // nil: no interest frame
		topic      string
		want, sure bool
	}{
		{nil, "a.b", true, true},
		{[]string{}, "a.b", false, true},
		{[]string{"a."}, "a.b", true, true},
		{[]string{"a.b\x00"}, "a.b", true, true},
		{[]string{"a.b\x00"}, "a.bc", false, true},
		{[]string{"b."}, "a.b", false, true},
		{[]string{"a.b\x00\x01"}, "a.b", false, false}, // past the topic: only the frame tells
		{[]string{"a.c\x00\x01"}, "a.b", false, true},
		{[]string{"a.b\x00\x01", "a."}, "a.b", true, true},
	} {
		p := &pubPipe{}
		if c.interest != nil {
			in := make([][]byte, len(c.interest))
			for i, s := range c.interest {
				in[i] = []byte(s)
			}
			p.interest.Store(&in)
		}
		want, sure := p.wantsTopic(c.topic)
		if want != c.want || sure != c.sure {
			t.Errorf("interest %q, topic %q: got %v, %v; want %v, %v", c.interest, c.topic, want, sure, c.want, c.sure)
		}
	}
}
