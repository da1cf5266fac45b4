package sock

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/logx"
	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol"
)

// Spread is spmesh's PUSH protocol: each message goes to one puller
// connection, chosen round robin among the connections whose queue has
// room, so that equal pullers get equal shares and a slow one, its queue
// full, is skipped until it catches up. (mangos' PUSH gives the next
// message to whichever connection's sender goroutine is ready first, and
// starts a goroutine per message to do it.) It speaks the standard PUSH
// wire protocol: a frame is the message body.
//
// Each connection's queue holds at most maxMsgs messages (Settings.
// SendQueue) and maxBytes bytes (Settings.QueueBytes, each frame charged
// its buffer's capacity plus 128 bytes); a frame larger than maxBytes is
// still queued when the queue is empty. Send waits while every queue is
// full or there is no connection. What is queued for a connection when it
// goes, or when the socket closes, is lost and counted as Dropped. A
// frame a puller sends (a PULL sends nothing) is discarded and counted in
// DecodeErrors; its connection is kept.
type Spread struct {
	mu       sync.Mutex
	closed   bool
	pipes    []*pushPipe // in attach order; next is the round-robin cursor
	next     int
	maxMsgs  int
	maxBytes int
	room     chan struct{}          // closed (and replaced) when a queue frees room or a pipe attaches
	closedq  chan struct{}          // closed by Close
	so       atomic.Pointer[Socket] // set by PushOf; nil: nothing counted
	c        *Counters              // the socket's: bytes counted from the first frame
	senders  sync.WaitGroup
	out      Pending // frames queued for, or being written to, a connection (Flushed)
}

// Flushed returns nil once every frame queued so far has been written to
// its connection (or dropped with a connection that went, counted), or
// ctx's error when ctx ends first: a draining pusher waits on it.
func (s *Spread) Flushed(ctx context.Context) error {
	return flushed(ctx, &s.out, func(each func(protocol.Pipe)) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, p := range s.pipes {
			each(p.p)
		}
	})
}

type pushPipe struct {
	s      *Spread
	p      protocol.Pipe
	closeq chan struct{}
	wake   chan struct{} // capacity 1: the sender waits on it when q is empty

	// Under Spread.mu.
	q       []*mangos.Message // q[head:] waits to be sent
	head    int
	bytes   int
	waiting bool // a Send waits for room: take signals Spread.room
	dead    bool // the sender has stopped: Send skips it
	gone    bool // removed
}

// optPush is the option through which PushOf finds a socket's Spread.
const optPush = "SPMESH-PUSH"

func newPushSocket(c *Counters) mangos.Socket {
	return protocol.MakeSocket(spreadProto{&Spread{c: c,
		maxMsgs: DefaultQueue, maxBytes: DefaultQueueBytes,
		room: make(chan struct{}), closedq: make(chan struct{}),
	}})
}

// spreadProto is Spread as mangos drives it: the protocol.Protocol methods
// live on it, not on Spread, so that a pattern package holding a Spread
// sends through Send only.
type spreadProto struct{ *Spread }

// PushOf returns the Spread of a socket opened with it (nil for any other)
// and makes it count drops in so's Counters and bound its queues by so's
// SendQueue and QueueBytes.
func PushOf(so *Socket) *Spread {
	v, err := so.m.GetOption(optPush)
	s, _ := v.(*Spread)
	if err != nil || s == nil {
		return nil
	}
	s.so.Store(so)
	s.mu.Lock()
	if so.Settings.SendQueue > 0 {
		s.maxMsgs = so.Settings.SendQueue
	}
	if so.Settings.QueueBytes > 0 {
		s.maxBytes = so.Settings.QueueBytes
	}
	s.mu.Unlock()
	return s
}

// Send queues m for the next connection in turn whose queue has room,
// waiting while there is none, until ctx ends or done closes (it then
// returns ctx.Err() or protocol.ErrClosed); with wait false it fails at
// once with mangos.ErrNoPeers instead. On success it takes m; on error
// the caller keeps it.
func (s *Spread) Send(ctx context.Context, done <-chan struct{}, f *Frame, wait bool) error {
	m := f.msg()
	size := frameCost(m)
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return protocol.ErrClosed
		}
		n := len(s.pipes)
		for i := range n {
			p := s.pipes[(s.next+i)%n]
			if p.dead {
				continue
			}
			if k := len(p.q) - p.head; k == 0 || k < s.maxMsgs && p.bytes+size <= s.maxBytes {
				s.next = (s.next + i + 1) % n
				s.out.Add(1)
				p.q = append(p.q, m)
				p.bytes += size
				s.mu.Unlock()
				select {
				case p.wake <- struct{}{}:
				default:
				}
				return nil
			}
		}
		if !wait {
			s.mu.Unlock()
			return mangos.ErrNoPeers
		}
		for _, p := range s.pipes {
			p.waiting = true
		}
		room := s.room
		s.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return protocol.ErrClosed
		case <-s.closedq:
			return protocol.ErrClosed
		}
	}
}

// signal wakes the Sends waiting for room. Called with s.mu held.
func (s *Spread) signal() {
	close(s.room)
	s.room = make(chan struct{})
}

// take removes the oldest frame queued for p; nil when none.
func (p *pushPipe) take() *mangos.Message {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.head == len(p.q) {
		return nil
	}
	m := p.q[p.head]
	p.q[p.head] = nil
	p.head++
	p.bytes -= frameCost(m)
	if p.head == len(p.q) {
		p.head = 0
		if cap(p.q) > 4096 {
			p.q = nil
		} else {
			p.q = p.q[:0]
		}
	} else if p.head >= 1024 && p.head*2 >= len(p.q) {
		p.q = p.q[:copy(p.q, p.q[p.head:])]
		clear(p.q[len(p.q):cap(p.q)])
		p.head = 0
	}
	if p.waiting {
		p.waiting = false
		s.signal()
	}
	return m
}

// sender writes p's queued frames to its connection; when the connection
// goes, what is still queued is freed and counted as dropped.
func (p *pushPipe) sender() {
	defer p.s.senders.Done()
	defer p.p.Close()
	defer p.discard()
	so := p.s.so.Load()
	for {
		m := p.take()
		if m == nil {
			select {
			case <-p.closeq:
				return
			case <-p.wake:
			}
			continue
		}
		n := len(m.Body) // SendMsg takes m
		if err := p.p.SendMsg(m); err != nil {
			m.Free()
			p.s.dropped(1)
			p.s.out.Done(1)
			return
		}
		p.s.out.Done(1)
		p.s.c.BytesSent.Add(uint64(n))
		if so != nil {
			so.C.Sent.Add(1)
		} else if so = p.s.so.Load(); so != nil {
			so.C.Sent.Add(1)
		}
	}
}

// discard frees what is queued for p, counting it as dropped, and makes
// Send skip p from now on.
func (p *pushPipe) discard() {
	s := p.s
	s.mu.Lock()
	p.dead = true
	left := p.q[p.head:]
	p.q, p.head, p.bytes = nil, 0, 0
	if p.waiting {
		p.waiting = false
		s.signal()
	}
	s.mu.Unlock()
	for _, m := range left {
		m.Free()
	}
	s.dropped(len(left))
	s.out.Done(len(left))
}

func (s *Spread) dropped(n int) {
	if so := s.so.Load(); so != nil && n > 0 {
		so.C.Dropped.Add(uint64(n))
		so.C.DroppedClosed.Add(uint64(n)) // only lost with their connection
	}
}

// Wait waits until every connection's sender has stopped, after Close:
// what was queued is then counted as Dropped.
func (s *Spread) Wait() { s.senders.Wait() }

// errPullerSent is why a frame from a puller is discarded.
var errPullerSent = fmt.Errorf("%w: a frame from a PULL peer, which sends nothing", spmesh.ErrDecode)

// receiver notices the connection closing. A PULL sends nothing: any
// frame its peer sends is not a valid message, so it is discarded and
// counted in DecodeErrors (logged at Warn, rate limited), and the
// connection is kept, as NNG's PUSH keeps it.
func (p *pushPipe) receiver() {
	defer p.p.Close()
	for {
		m := p.p.RecvMsg()
		if m == nil {
			return
		}
		p.s.c.DecodeErrors.Add(1)
		if so := p.s.so.Load(); so != nil {
			addr := pipeAddr(m.Pipe)
			so.WarnPeer(addr, "spmesh: discarded a frame from a puller (a puller sends nothing)",
				logx.Remote, addr, logx.Err, errPullerSent)
		}
		m.Free()
	}
}

// SendMsg implements protocol.Protocol: waits for room, until Close.
func (s spreadProto) SendMsg(m *mangos.Message) error {
	return s.Send(context.Background(), nil, frame(m), true)
}

// RecvMsg implements protocol.Protocol: a PUSH socket receives nothing.
func (s spreadProto) RecvMsg() (*mangos.Message, error) { return nil, protocol.ErrProtoOp }

// SetOption implements protocol.Protocol.
func (s spreadProto) SetOption(name string, v any) error { return s.opts().set(name, v) }

// GetOption implements protocol.Protocol.
func (s spreadProto) GetOption(name string) (any, error) { return s.opts().get(name) }

func (s *Spread) opts() qlenOption { return qlenOption{&s.mu, &s.maxMsgs, s, optPush} }

// AddPipe implements protocol.Protocol.
func (s spreadProto) AddPipe(pp protocol.Pipe) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return protocol.ErrClosed
	}
	p := &pushPipe{s: s.Spread, p: pp, closeq: make(chan struct{}), wake: make(chan struct{}, 1)}
	pp.SetPrivate(p)
	s.pipes = append(s.pipes, p)
	s.signal() // a waiting Send has somewhere to go
	s.senders.Add(1)
	go p.sender()
	go p.receiver()
	return nil
}

// RemovePipe implements protocol.Protocol.
func (s spreadProto) RemovePipe(pp protocol.Pipe) {
	p := pp.GetPrivate().(*pushPipe)
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.gone {
		return
	}
	p.gone = true
	for i, q := range s.pipes {
		if q == p {
			s.pipes = append(s.pipes[:i], s.pipes[i+1:]...)
			if s.next > i {
				s.next--
			}
			break
		}
	}
	if len(s.pipes) > 0 {
		s.next %= len(s.pipes)
	} else {
		s.next = 0
	}
	close(p.closeq)
}

// OpenContext implements protocol.Protocol: PUSH has no contexts here.
func (s spreadProto) OpenContext() (protocol.Context, error) { return nil, protocol.ErrProtoOp }

// Info implements protocol.Protocol.
func (s spreadProto) Info() protocol.Info {
	return protocol.Info{Self: mangos.ProtoPush, Peer: mangos.ProtoPull, SelfName: "push", PeerName: "pull"}
}

// Close implements protocol.Protocol.
func (s spreadProto) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return protocol.ErrClosed
	}
	s.closed = true
	close(s.closedq)
	return nil
}
