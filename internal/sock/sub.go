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
//     matches (a stock PUB ignores the frame);
//   - with hold (SubHold, lossless pub/sub), when its receive queue is full
//     a connection's reader waits instead of dropping the oldest frame, so
//     that the connection stops being read and TCP flow control holds the
//     publisher back. Without hold, it drops the oldest frame, as mangos
//     does (the subscriber sees the gap).
type subProto struct {
	hold   bool
	c      *Counters     // the socket's: bytes sent and received
	quiet  bool          // Quiet: no interest frames (bare_pubsub.go)
	drops  atomic.Uint64 // frames the full receive queue dropped (SubDrops)
	mu     sync.Mutex
	closed bool
	subs   [][]byte
	pipes  map[uint32]*subPipe
	recvQ  chan *mangos.Message
	closeq chan struct{}
}

type subPipe struct {
	p      protocol.Pipe
	dirty  chan struct{} // capacity 1: the interest changed
	closeq chan struct{}
}

// optHold reports whether a socket's SUB protocol holds rather than drops.
const optHold = "SPMESH-SUB-HOLD"

func newSubSocket(hold bool, c *Counters) mangos.Socket {
	return protocol.MakeSocket(&subProto{hold: hold, c: c, pipes: map[uint32]*subPipe{}, recvQ: make(chan *mangos.Message, DefaultQueue), closeq: make(chan struct{})})
}

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
			select {
			case q <- m:
			case <-s.closeq:
				m.Free()
				return
			}
			continue
		}
		for sent := false; !sent; {
			select {
			case q <- m:
				sent = true
			default:
				select { // full: drop the oldest (seen as a gap)
				case old := <-q:
					old.Free()
					s.drops.Add(1)
				default:
				}
			}
		}
	}
}

// announcer sends the subscription prefixes on the connection, at once and
// after each change.
func (s *subProto) announcer(sp *subPipe) {
	for {
		s.mu.Lock()
		m := mangos.NewMessage(64)
		m.Body = wire.AppendInterest(m.Body[:0], s.subs)
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
