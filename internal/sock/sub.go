package sock

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/spmesh/spmesh/internal/wire"
	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol"
)

// subProto is spmesh's SUB protocol. It filters by prefix like mangos' SUB
// and speaks the same wire protocol, plus:
//
//   - it announces its prefixes to each publisher in an interest frame
//     (wire kind 11), when the connection is established and after each
//     change, so that a publisher speaking Fanout sends it only what
//     matches (a stock PUB ignores the frame), and with them its receive
//     limit (optFrame), which bounds the publisher's batch frames;
//   - its receive queue, shared by all its connections, is bounded in
//     frames (OptionReadQLen) and in bytes (Settings.QueueBytes, set by
//     Open: the frames' body sizes); a frame larger than the byte bound
//     is still queued when the queue is empty;
//   - with hold (SubHold, lossless pub/sub), when its receive queue is full
//     a connection's reader waits instead of dropping the oldest frame, so
//     that the connection stops being read and TCP flow control holds the
//     publisher back. Without hold, it drops the oldest frames until the
//     new one fits, as mangos does when full (the subscriber sees the gap).
type subProto struct {
	hold  bool
	c     *Counters     // the socket's: bytes sent and received
	quiet bool          // Quiet: no interest frames (bare_pubsub.go)
	drops atomic.Uint64 // frames the full receive queue dropped (SubDrops)
	// Byte bound of recvQ: held is the bytes of the frames sent on it and
	// not yet taken by RecvMsg (charged before the send, released after
	// the receive, so never below what is in it). qmu orders the readers
	// of the connections as they make room and queue (a drop must not
	// race another reader's queueing); RecvMsg takes no lock. A holding
	// reader waits on room, which RecvMsg signals.
	maxBytes atomic.Int64
	held     atomic.Int64
	qmu      sync.Mutex
	room     chan struct{}
	mu       sync.Mutex
	closed   bool
	subs     [][]byte
	frame    uint32 // the largest frame accepted, announced with subs
	pipes    map[uint32]*subPipe
	recvQ    chan *mangos.Message
	closeq   chan struct{}
}

type subPipe struct {
	p      protocol.Pipe
	dirty  chan struct{} // capacity 1: the interest changed
	closeq chan struct{}
}

// optHold reports whether a socket's SUB protocol holds rather than drops.
const optHold = "SPMESH-SUB-HOLD"

func newSubSocket(hold bool, c *Counters) mangos.Socket {
	s := &subProto{hold: hold, c: c, pipes: map[uint32]*subPipe{}, recvQ: make(chan *mangos.Message, DefaultQueue), room: make(chan struct{}, 1), closeq: make(chan struct{})}
	s.maxBytes.Store(DefaultQueueBytes)
	return protocol.MakeSocket(s)
}

// optQueueBytes sets the byte bound of a SUB socket's receive queue;
// optQueued reads the bytes it holds.
const (
	optQueueBytes = "SPMESH-SUB-QUEUE-BYTES"
	optQueued     = "SPMESH-SUB-QUEUED"
)

// optFrame sets the receive limit a SUB socket announces (0: none, sent as
// the largest value the key holds).
const optFrame = "SPMESH-SUB-FRAME"

// Holds reports whether so's receive queue holds its connections back
// rather than dropping (a SubHold socket).
func (so *Socket) Holds() bool {
	v, err := so.m.GetOption(optHold)
	b, _ := v.(bool)
	return err == nil && b
}

// frame returns the receive queue if m matches a subscription, else nil.
func (s *subProto) match(m *mangos.Message) chan *mangos.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.subs {
		if bytes.HasPrefix(m.Body, p) {
			return s.recvQ
		}
	}
	return nil
}

func (s *subProto) receiver(sp *subPipe) {
	defer sp.p.Close()
	for {
		m := sp.p.RecvMsg()
		if m == nil {
			return
		}
		s.c.BytesReceived.Add(uint64(len(m.Body)))
		q := s.match(m)
		if q == nil {
			m.Free()
			continue
		}
		if s.hold {
			if !s.hold1(q, m) {
				m.Free()
				return
			}
			continue
		}
		s.drop1(q, m)
	}
}

// drop1 queues m on q, first dropping the oldest frames (counted in drops)
// until m fits in both bounds.
func (s *subProto) drop1(q chan *mangos.Message, m *mangos.Message) {
	n := int64(len(m.Body))
	s.qmu.Lock()
	for lim := s.maxBytes.Load(); s.held.Load()+n > lim; {
		if !s.dropOldest(q) {
			break // empty: what held still counts is being taken (RecvMsg)
		}
	}
	s.held.Add(n)
	for {
		select {
		case q <- m:
			s.qmu.Unlock()
			return
		default: // full in frames: drop the oldest (seen as a gap)
			s.dropOldest(q)
		}
	}
}

// dropOldest drops the oldest frame of q, if any, counting it in drops
// only: an enveloped subscriber counts the messages it carried as gaps
// (Dropped, DroppedGap), a bare one adds SubDrops to Dropped and
// DroppedQueueFull.
func (s *subProto) dropOldest(q chan *mangos.Message) bool {
	select {
	case old := <-q:
		s.held.Add(-int64(len(old.Body)))
		old.Free()
		s.drops.Add(1)
		return true
	default:
		return false
	}
}

// hold1 queues m on q, waiting until it fits in both bounds: the
// connection is not read meanwhile. It reports false if the socket closed
// first (m is then not queued).
func (s *subProto) hold1(q chan *mangos.Message, m *mangos.Message) bool {
	n := int64(len(m.Body))
	for {
		s.qmu.Lock()
		if h := s.held.Load(); h == 0 || h+n <= s.maxBytes.Load() {
			s.held.Add(n)
			s.qmu.Unlock()
			break
		}
		s.qmu.Unlock()
		select {
		case <-s.room:
		case <-s.closeq:
			return false
		}
	}
	if s.held.Load() < s.maxBytes.Load() {
		s.signalRoom() // pass it on to another waiting connection
	}
	select {
	case q <- m:
		return true
	case <-s.closeq:
		s.held.Add(-n)
		return false
	}
}

// signalRoom wakes a reader waiting for room in the queue, if any.
func (s *subProto) signalRoom() {
	select {
	case s.room <- struct{}{}:
	default:
	}
}

// announcer sends the subscription prefixes on the connection, at once and
// after each change.
func (s *subProto) announcer(sp *subPipe) {
	for {
		s.mu.Lock()
		m := mangos.NewMessage(64)
		m.Body = wire.AppendInterest(m.Body[:0], s.frame, s.subs)
		s.mu.Unlock()
		n := len(m.Body) // SendMsg takes m
		if err := sp.p.SendMsg(m); err != nil {
			m.Free()
			return
		}
		s.c.BytesSent.Add(uint64(n))
		select {
		case <-sp.dirty:
		case <-sp.closeq:
			return
		}
	}
}

// SendMsg implements protocol.Protocol: a SUB socket sends nothing.
func (s *subProto) SendMsg(*mangos.Message) error { return protocol.ErrProtoOp }

// RecvMsg implements protocol.Protocol.
func (s *subProto) RecvMsg() (*mangos.Message, error) {
	s.mu.Lock()
	q := s.recvQ
	s.mu.Unlock()
	select {
	case m := <-q:
		s.held.Add(-int64(len(m.Body)))
		if s.hold {
			s.signalRoom()
		}
		return m, nil
	case <-s.closeq:
		return nil, protocol.ErrClosed
	}
}

// SetOption implements protocol.Protocol. The queue length is set before
// any connection (Open and NewFrameInbox do).
func (s *subProto) SetOption(name string, v any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch name {
	case mangos.OptionSubscribe, mangos.OptionUnsubscribe:
		b, ok := v.([]byte)
		if !ok {
			if str, isStr := v.(string); isStr {
				b, ok = []byte(str), true
			}
		}
		if !ok {
			return protocol.ErrBadValue
		}
		found := -1
		for i, p := range s.subs {
			if bytes.Equal(p, b) {
				found = i
			}
		}
		switch {
		case name == mangos.OptionSubscribe && found >= 0:
			return nil
		case name == mangos.OptionSubscribe:
			s.subs = append(s.subs[:len(s.subs):len(s.subs)], append([]byte(nil), b...))
		case found < 0:
			return protocol.ErrBadValue
		default:
			s.subs = append(s.subs[:found:found], s.subs[found+1:]...)
		}
		for _, sp := range s.pipes {
			select {
			case sp.dirty <- struct{}{}:
			default:
			}
		}
		return nil
	case optQuiet:
		s.quiet = true
		return nil
	case optQueueBytes:
		n, ok := v.(int)
		if !ok || n < 1 {
			return protocol.ErrBadValue
		}
		s.maxBytes.Store(int64(n))
		return nil
	case optFrame:
		n, ok := v.(int)
		if !ok || n < 0 {
			return protocol.ErrBadValue
		}
		s.frame = uint32(min(uint64(n), 1<<32-1))
		if n == 0 {
			s.frame = 1<<32 - 1
		}
		return nil
	case mangos.OptionReadQLen:
		n, ok := v.(int)
		if !ok || n < 1 {
			return protocol.ErrBadValue
		}
		if len(s.recvQ) == 0 {
			s.recvQ = make(chan *mangos.Message, n)
		}
		return nil
	}
	return protocol.ErrBadOption
}

// GetOption implements protocol.Protocol.
func (s *subProto) GetOption(name string) (any, error) {
	switch name {
	case optHold:
		return s.hold, nil
	case optDrops:
		return s.drops.Load(), nil
	case optQueued:
		return s.held.Load(), nil
	case mangos.OptionRaw:
		return false, nil
	case mangos.OptionReadQLen:
		s.mu.Lock()
		defer s.mu.Unlock()
		return cap(s.recvQ), nil
	}
	return nil, protocol.ErrBadOption
}

// AddPipe implements protocol.Protocol.
func (s *subProto) AddPipe(p protocol.Pipe) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return protocol.ErrClosed
	}
	sp := &subPipe{p: p, dirty: make(chan struct{}, 1), closeq: make(chan struct{})}
	p.SetPrivate(sp)
	s.pipes[p.ID()] = sp
	go s.receiver(sp)
	if !s.quiet {
		go s.announcer(sp)
	}
	return nil
}

// RemovePipe implements protocol.Protocol.
func (s *subProto) RemovePipe(p protocol.Pipe) {
	sp := p.GetPrivate().(*subPipe)
	s.mu.Lock()
	delete(s.pipes, p.ID())
	s.mu.Unlock()
	close(sp.closeq)
}

// OpenContext implements protocol.Protocol.
func (s *subProto) OpenContext() (protocol.Context, error) { return nil, protocol.ErrProtoOp }

// Info implements protocol.Protocol.
func (s *subProto) Info() protocol.Info {
	return protocol.Info{Self: mangos.ProtoSub, Peer: mangos.ProtoPub, SelfName: "sub", PeerName: "pub"}
}

// Close implements protocol.Protocol.
func (s *subProto) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return protocol.ErrClosed
	}
	s.closed = true
	close(s.closeq)
	return nil
}
