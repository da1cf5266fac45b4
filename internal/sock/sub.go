package sock

import (
	"bytes"
	"sync"

	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol"
)

// holdSub is spmesh's SUB protocol for backpressure (lossless pub/sub): it
// filters by prefix like mangos' SUB and speaks the same wire protocol, but
// when its receive queue is full a connection's reader waits instead of
// dropping the oldest frame, so that the connection stops being read and
// TCP flow control holds the publisher back.
type holdSub struct {
	mu     sync.Mutex
	closed bool
	subs   [][]byte
	recvQ  chan *mangos.Message
	closeq chan struct{}
}

// optHold reports whether a socket's SUB protocol holds rather than drops.
const optHold = "SPMESH-SUB-HOLD"

func newHoldSubSocket() mangos.Socket {
	return protocol.MakeSocket(&holdSub{recvQ: make(chan *mangos.Message, DefaultQueue), closeq: make(chan struct{})})
}

// Holds reports whether so's receive queue holds its connections back
// rather than dropping (a SubHold socket).
func (so *Socket) Holds() bool {
	v, err := so.M.GetOption(optHold)
	b, _ := v.(bool)
	return err == nil && b
}

func (s *holdSub) matches(m *mangos.Message) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.subs {
		if bytes.HasPrefix(m.Body, p) {
			return true
		}
	}
	return false
}

func (s *holdSub) receiver(p protocol.Pipe) {
	defer p.Close()
	for {
		m := p.RecvMsg()
		if m == nil {
			return
		}
		if !s.matches(m) {
			m.Free()
			continue
		}
		s.mu.Lock()
		q := s.recvQ
		s.mu.Unlock()
		select {
		case q <- m:
		case <-s.closeq:
			m.Free()
			return
		}
	}
}

// SendMsg implements protocol.Protocol: a SUB socket sends nothing.
func (s *holdSub) SendMsg(*mangos.Message) error { return protocol.ErrProtoOp }

// RecvMsg implements protocol.Protocol.
func (s *holdSub) RecvMsg() (*mangos.Message, error) {
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
func (s *holdSub) SetOption(name string, v any) error {
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
		for i, p := range s.subs {
			if bytes.Equal(p, b) {
				if name == mangos.OptionUnsubscribe {
					s.subs = append(s.subs[:i:i], s.subs[i+1:]...)
				}
				return nil
			}
		}
		if name == mangos.OptionUnsubscribe {
			return protocol.ErrBadValue
		}
		s.subs = append(s.subs, append([]byte(nil), b...))
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
func (s *holdSub) GetOption(name string) (any, error) {
	switch name {
	case optHold:
		return true, nil
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
func (s *holdSub) AddPipe(p protocol.Pipe) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return protocol.ErrClosed
	}
	go s.receiver(p)
	return nil
}

// RemovePipe implements protocol.Protocol.
func (s *holdSub) RemovePipe(protocol.Pipe) {}

// OpenContext implements protocol.Protocol.
func (s *holdSub) OpenContext() (protocol.Context, error) { return nil, protocol.ErrProtoOp }

// Info implements protocol.Protocol.
func (s *holdSub) Info() protocol.Info {
	return protocol.Info{Self: mangos.ProtoSub, Peer: mangos.ProtoPub, SelfName: "sub", PeerName: "pub"}
}

// Close implements protocol.Protocol.
func (s *holdSub) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return protocol.ErrClosed
	}
	s.closed = true
	close(s.closeq)
	return nil
}
