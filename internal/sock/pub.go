package sock

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol"
)

// Fanout is spmesh's PUB protocol: mangos' own semantics (one send queue per
// subscriber connection, of Settings.SendQueue frames; the publisher never
// blocks; a full queue drops the new frame, the subscriber sees the gap),
// plus counting: every frame dropped for a connection counts the messages
// it carried in the socket's Dropped and in that connection's drops, and
// the first drop of a run is logged (rate-limited) with the subscriber's
// address. It speaks the standard PUB wire protocol.
type Fanout struct {
	mu     sync.Mutex
	closed bool
	pipes  map[uint32]*pubPipe
	qlen   int
	so     atomic.Pointer[Socket] // set by PubOf; nil: drops counted per pipe only
	log    logLimit
}

type pubPipe struct {
	p       protocol.Pipe
	q       chan *mangos.Message
	closeq  chan struct{}
	addr    string // set on attach (under Fanout.mu)
	dropped uint64 // messages (under Fanout.mu)
}

// optPub is the option through which PubOf finds a socket's Fanout.
const optPub = "SPMESH-PUB"

// newPubSocket opens a mangos socket speaking Fanout.
func newPubSocket() mangos.Socket {
	return protocol.MakeSocket(&Fanout{pipes: map[uint32]*pubPipe{}, qlen: 128})
}

// PubOf returns the Fanout of a socket opened with Fanout as its protocol (nil for
// any other), and makes it count in so's Counters and learn its
// subscribers' addresses.
func PubOf(so *Socket) *Fanout {
	v, err := so.M.GetOption(optPub)
	p, _ := v.(*Fanout)
	if err != nil || p == nil {
		return nil
	}
	p.so.Store(so)
	so.OnPipe(func(ev mangos.PipeEvent, mp mangos.Pipe) {
		if ev != mangos.PipeEventAttached {
			return
		}
		p.mu.Lock()
		if pp := p.pipes[mp.ID()]; pp != nil {
			pp.addr = pipeAddr(mp)
		}
		p.mu.Unlock()
	})
	return p
}

// Send queues m, a frame carrying n messages, for every subscriber
// connection; a connection whose queue is full drops it (counted). It
// never blocks. It takes m.
func (s *Fanout) Send(m *mangos.Message, n int) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		m.Free()
		return protocol.ErrClosed
	}
	for _, p := range s.pipes {
		m.Clone()
		select {
		case p.q <- m:
		default:
			m.Free()
			s.dropped(p, n)
		}
	}
	s.mu.Unlock()
	m.Free()
	return nil
}

// dropped counts n messages lost for p. Called with s.mu held.
func (s *Fanout) dropped(p *pubPipe, n int) {
	first := p.dropped == 0
	p.dropped += uint64(n)
	so := s.so.Load()
	if so == nil {
		return
	}
	so.C.Dropped.Add(uint64(n))
	if first {
		s.log.log(so.Settings.Logger, slog.LevelWarn, "spmesh: subscriber not keeping up: messages for it dropped (it sees the gaps)",
			"remote", p.addr, "queue", s.qlen)
	}
}

// Drops returns, per connected subscriber (by remote address), how many
// messages were dropped for it since it connected. Subscribers with no
// drop are listed with 0.
func (s *Fanout) Drops() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.pipes))
	for _, p := range s.pipes {
		out[p.addr] += p.dropped
	}
	return out
}

// SendMsg implements protocol.Protocol: one message per frame.
func (s *Fanout) SendMsg(m *mangos.Message) error { return s.Send(m, 1) }

// RecvMsg implements protocol.Protocol: a PUB socket receives nothing.
func (s *Fanout) RecvMsg() (*mangos.Message, error) { return nil, protocol.ErrProtoOp }

// SetOption implements protocol.Protocol.
func (s *Fanout) SetOption(name string, v any) error {
	if name == mangos.OptionWriteQLen {
		if n, ok := v.(int); ok && n >= 0 {
			s.mu.Lock()
			s.qlen = n
			s.mu.Unlock()
			return nil
		}
		return protocol.ErrBadValue
	}
	return protocol.ErrBadOption
}

// GetOption implements protocol.Protocol.
func (s *Fanout) GetOption(name string) (any, error) {
	switch name {
	case optPub:
		return s, nil
	case mangos.OptionRaw:
		return false, nil
	case mangos.OptionWriteQLen:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.qlen, nil
	}
	return nil, protocol.ErrBadOption
}

// AddPipe implements protocol.Protocol.
func (s *Fanout) AddPipe(pp protocol.Pipe) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return protocol.ErrClosed
	}
	p := &pubPipe{p: pp, q: make(chan *mangos.Message, s.qlen), closeq: make(chan struct{})}
	pp.SetPrivate(p)
	s.pipes[pp.ID()] = p
	go p.sender()
	go p.receiver()
	return nil
}

// RemovePipe implements protocol.Protocol.
func (s *Fanout) RemovePipe(pp protocol.Pipe) {
	p := pp.GetPrivate().(*pubPipe)
	s.mu.Lock()
	delete(s.pipes, pp.ID())
	close(p.closeq)
	s.mu.Unlock()
}

// OpenContext implements protocol.Protocol: PUB has no contexts.
func (s *Fanout) OpenContext() (protocol.Context, error) { return nil, protocol.ErrProtoOp }

// Info implements protocol.Protocol.
func (s *Fanout) Info() protocol.Info {
	return protocol.Info{Self: mangos.ProtoPub, Peer: mangos.ProtoSub, SelfName: "pub", PeerName: "sub"}
}

// Close implements protocol.Protocol.
func (s *Fanout) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return protocol.ErrClosed
	}
	s.closed = true
	return nil
}

// sender writes the queued frames to the connection.
func (p *pubPipe) sender() {
	defer p.p.Close()
	for {
		select {
		case <-p.closeq:
			return
		case m := <-p.q:
			if err := p.p.SendMsg(m); err != nil {
				m.Free()
				return
			}
		}
	}
}

// receiver discards whatever the subscriber sends (nothing, in SUB).
func (p *pubPipe) receiver() {
	defer p.p.Close()
	for {
		m := p.p.RecvMsg()
		if m == nil {
			return
		}
		m.Free()
	}
}
