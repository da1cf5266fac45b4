package sock

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh/internal/logx"
	"github.com/spmesh/spmesh/internal/wire"
	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol"
)

// Fanout is spmesh's PUB protocol: mangos' semantics (one send queue per
// subscriber connection; a full queue drops the new frame, the subscriber
// sees the gap; the publisher does not block, but for one short wait per
// shedding episode: ShedWait), with queues bounded in messages
// and bytes rather than frames, plus counting: every frame dropped for a
// connection counts the messages it carried in the socket's Dropped and in
// that connection's drops, and the first drop of a run is logged
// (rate-limited) with the subscriber's address. It speaks the standard PUB
// wire protocol.
//
// Each connection's queue holds at most maxMsgs messages (Settings.SendQueue;
// a batch frame counts the messages it carries) and maxBytes bytes of frames
// (Settings.QueueBytes, each frame charged its buffer's capacity plus 128
// bytes: the memory it holds); a frame larger than maxBytes is still queued when
// the queue is empty.
//
// A queue that filled sheds: from the first frame it drops for want of
// room until it has drained to half of both bounds, it drops every new
// frame (counted), so that an overloaded connection loses whole runs of
// messages rather than one frame in two, and its publisher can skip the
// work for them altogether (Shed) while it drains.
type Fanout struct {
	mu       sync.Mutex
	closed   bool
	pipes    map[uint32]*pubPipe
	list     []*pubPipe // pipes' values, for Shed (a map's iteration costs more)
	maxMsgs  int
	maxBytes int
	so       atomic.Pointer[Socket]                   // set by PubOf; nil: drops counted per pipe only
	c        *Counters                                // the socket's: bytes counted from the first frame
	slow     func(addr string, dropped, since uint64) // OnSlow; nil: none
	slowGap  time.Duration

	// Backpressure (Hold): a full queue makes Send wait, up to stall, then
	// cuts that connection off.
	stall   time.Duration // 0: drop (the default)
	abort   chan struct{} // closed by Abort: waiting Sends drop
	sendMu  sync.Mutex    // serialises waiting Sends (scratch)
	scratch []*pubPipe

	out Pending // frames queued for, or being written to, a connection (Flushed)

	// shedding counts the connections whose queue sheds (pubPipe.shed):
	// Shed looks no further while it is 0.
	shedding atomic.Int32

	// shedWait is how long the first Send that finds a connection's queue
	// full waits for it to drain to half (ShedWait); 0: it drops at once.
	shedWait time.Duration

	// batch is BatchLimit: the smallest frame limit the connections
	// announced (LegacyBatchFrame for one that announced none), at most
	// MaxBatchFrame. Set under mu.
	batch atomic.Int64
}

// Batch frame bounds (BatchLimit).
const (
	// MaxBatchFrame is the largest batch frame: below 64 KiB, so that a
	// full one fits mangos' 64 KiB buffer class on both sides.
	MaxBatchFrame = 64<<10 - 1
	// LegacyBatchFrame bounds batch frames while a subscriber has not
	// announced its receive limit (a stock SUB, an spmesh subscriber
	// before wire key 14, or one whose interest frame is on its way):
	// below 8 KiB, as spmesh's batch frames always were.
	LegacyBatchFrame = 8<<10 - 1
)

// BatchLimit returns how large a batch frame the connected subscribers
// all accept: the smallest receive limit they announced in their interest
// frames (wire key 14), LegacyBatchFrame while one has announced none, at
// most MaxBatchFrame. An announcement below LegacyBatchFrame counts as
// LegacyBatchFrame: the key only raises the bound, so that a subscriber
// cannot make its publisher send everyone one message per frame (a
// subscriber whose limit is that small has frames of its publishers
// refused, as before the key). A frame built under it may still reach a
// subscriber that connects meanwhile; one larger than that subscriber's
// limit is refused there (counted in its TooLarge), like any oversized
// frame.
func (s *Fanout) BatchLimit() int { return int(s.batch.Load()) }

// rebatch recomputes BatchLimit. s.mu is held.
func (s *Fanout) rebatch() {
	b := uint32(MaxBatchFrame)
	for _, p := range s.list {
		b = min(b, max(p.frame.Load(), LegacyBatchFrame))
	}
	s.batch.Store(int64(b))
}

// DefaultShedWait is the default ShedWait: a burst that fills a queue
// costs its publisher at most this long per shedding episode. 5 ms rather
// than 1: on loopback a full queue's sender moves in steps of the
// kernel's write wake-ups (about a millisecond each), so that a 1 ms wait
// nearly always timed out and changed nothing (bench/RESULTS.md).
const DefaultShedWait = 5 * time.Millisecond

// ShedWait sets how long the first Send that finds a connection's queue
// full waits, per shedding episode, for that queue to drain to half
// before dropping (0: it drops at once, as mangos PUB). Meanwhile the
// connection's queue counts as shedding for Send (concurrent Sends drop
// for it) but not for Shed (the publisher does not drop before encoding:
// it waits for its sender). An episode whose wait ends in time ends
// there, with the frame queued; one whose wait times out goes on (every
// new frame dropped) until the queue drains to half, with no other wait:
// a stalled subscriber costs the publisher one wait, not one per
// message. Call it before any connection.
func (s *Fanout) ShedWait(d time.Duration) {
	s.mu.Lock()
	s.shedWait = d
	s.mu.Unlock()
}

// Flushed returns nil once every frame queued so far has been written to
// its connection (or freed with a connection that went), or ctx's error
// when ctx ends first: a draining publisher waits on it.
func (s *Fanout) Flushed(ctx context.Context) error {
	return flushed(ctx, &s.out, func(each func(protocol.Pipe)) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, p := range s.pipes {
			each(p.p)
		}
	})
}

// Hold makes s wait for room rather than drop (lossless pub/sub): Send
// waits while a connection's queue is full, up to stall; past it that
// connection is closed (counted in SendTimeouts and logged) and the frame
// dropped for it (counted), so that a stalled subscriber cannot hold the
// others back forever. Call it before any connection.
func (s *Fanout) Hold(stall time.Duration) {
	s.mu.Lock()
	s.stall = stall
	s.mu.Unlock()
}

// Abort makes the Sends waiting for room, and those to come, drop instead
// (counted): a closing publisher does not wait for its subscribers.
func (s *Fanout) Abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.abort:
	default:
		close(s.abort)
	}
}

// OnSlow makes s call f, on a goroutine of its own, when messages are
// dropped for a subscriber connection: at most once per connection per
// interval every, with the subscriber's address, the messages dropped for
// it since it connected, and those dropped since the previous call for it.
// Drops after the last call of a quiet connection are reported with its
// next drop (and are always in Drops). Call it before any connection.
func (s *Fanout) OnSlow(f func(addr string, dropped, since uint64), every time.Duration) {
	s.mu.Lock()
	s.slow, s.slowGap = f, every
	s.mu.Unlock()
}

// queued is a frame in a connection's queue and the messages it carries.
type queued struct {
	m   *mangos.Message
	n   int
	ctl bool // a control frame (SendControl)
}

// frameCost is what a queued frame is charged against the byte bound: its
// buffer (the pool's size class, not only the bytes used) and the
// message's own struct, roughly.
func frameCost(m *mangos.Message) int { return cap(m.Body) + 128 }

// maxCtl is how many control frames a connection's queue holds beyond
// its bounds.
const maxCtl = 64

type pubPipe struct {
	p      protocol.Pipe
	closeq chan struct{}
	wake   chan struct{} // capacity 1: the sender waits on it when q is empty
	room   chan struct{} // closed by next when a Send waits for room (under qmu)
	// interest is the subscriber's prefixes, from its last interest frame
	// (wire kind 11): only frames starting with one are queued for it.
	// nil: none received (a stock SUB), everything is.
	interest atomic.Pointer[[][]byte]
	// frame is the receive limit from the last interest frame (wire key
	// 14); 0: none announced (BatchLimit).
	frame atomic.Uint32

	qmu         sync.Mutex
	q           []queued // q[head:] waits to be sent
	head        int
	msgs, bytes int       // what q[head:] holds
	ctl         int       // control frames in q[head:]
	addr        string    // set on attach (under Fanout.mu)
	dropped     uint64    // messages (under Fanout.mu)
	reported    uint64    // dropped at the last OnSlow call (under Fanout.mu)
	reportedAt  time.Time // when (under Fanout.mu)

	// shed is set (under qmu) when the queue drops a frame for want of
	// room, and cleared by next once the queue is down to lowMsgs and
	// lowBytes (half the bounds): meanwhile every new frame is dropped.
	shed              atomic.Bool
	lowMsgs, lowBytes int

	// held is set (under qmu) while a Send waits (ShedWait) for the
	// queue to drain to half, holding its frame: next then closes drained
	// instead of clearing shed, and the waiter queues its frame first.
	held    atomic.Bool
	drained chan struct{}
}

// optPub is the option through which PubOf finds a socket's Fanout.
const optPub = "SPMESH-PUB"

// newPubSocket opens a mangos socket speaking Fanout.
func newPubSocket(c *Counters) mangos.Socket {
	f := &Fanout{c: c, pipes: map[uint32]*pubPipe{}, maxMsgs: DefaultQueue, maxBytes: DefaultQueueBytes, shedWait: DefaultShedWait, abort: make(chan struct{})}
	f.batch.Store(MaxBatchFrame)
	return protocol.MakeSocket(fanoutProto{f})
}

// fanoutProto is Fanout as mangos drives it: the protocol.Protocol methods
// live on it, not on Fanout, so that a pattern package holding a Fanout
// sends through Send and SendControl only.
type fanoutProto struct{ *Fanout }

// PubOf returns the Fanout of a socket opened with Fanout as its protocol (nil for
// any other), and makes it count in so's Counters, learn its
// subscribers' addresses and bound its queues in bytes by so's QueueBytes.
func PubOf(so *Socket) *Fanout {
	v, err := so.m.GetOption(optPub)
	p, _ := v.(*Fanout)
	if err != nil || p == nil {
		return nil
	}
	p.so.Store(so)
	p.mu.Lock()
	if so.Settings.QueueBytes > 0 {
		p.maxBytes = so.Settings.QueueBytes
	}
	p.mu.Unlock()
	so.onPipe(func(ev mangos.PipeEvent, mp mangos.Pipe) {
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
// connection; a connection whose queue is full (in messages or bytes), or
// sheds (see Fanout), drops it (counted). It blocks only when it finds a
// queue full first (a new shedding episode): then it waits up to ShedWait
// for that queue to drain (see ShedWait). It takes m.
func (s *Fanout) Send(m *Frame, n int) error { return s.send(m.msg(), n, false) }

// SendControl queues m, a control frame that carries no message (a tail
// frame), for every subscriber connection, in order with the frames
// before it and past the queue's bounds: up to 64 such frames per
// connection, beyond which it is dropped, uncounted (a connection that
// holds 64 unsent control frames is not reading). It never blocks. It
// takes m.
func (s *Fanout) SendControl(m *Frame) error { return s.send(m.msg(), 0, true) }

func (s *Fanout) send(m *mangos.Message, n int, ctl bool) error {
	if s.stall > 0 && !ctl {
		return s.sendHold(m, n)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		m.Free()
		return protocol.ErrClosed
	}
	size := frameCost(m)
	var waitBuf [4]heldPipe
	wait := waitBuf[:0] // connections whose queue this Send found full first
	for _, p := range s.pipes {
		if !p.wants(m) {
			continue
		}
		p.qmu.Lock()
		var ok bool
		if ctl {
			ok = p.ctl < maxCtl
		} else {
			ok = !p.shed.Load() && (p.msgs == 0 || p.msgs+n <= s.maxMsgs && p.bytes+size <= s.maxBytes)
			if !ok && !p.shed.Load() {
				p.shed.Store(true)
				s.shedding.Add(1)
				if s.shedWait > 0 {
					// A new episode: wait for the queue to drain, below.
					p.held.Store(true)
					p.drained = make(chan struct{})
					wait = append(wait, heldPipe{p, p.drained})
					p.qmu.Unlock()
					continue
				}
			}
		}
		if ok {
			m.Clone()
			s.out.Add(1)
			p.q = append(p.q, queued{m, n, ctl})
			p.msgs += n
			if ctl {
				p.ctl++
			} else {
				p.bytes += size
			}
		}
		p.qmu.Unlock()
		if !ok {
			if !ctl {
				s.dropped(p, n)
				if so := s.so.Load(); so != nil {
					so.C.DroppedQueueFull.Add(uint64(n))
				}
			}
			continue
		}
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	bound := s.shedWait
	s.mu.Unlock()
	if len(wait) > 0 {
		s.waitDrained(wait, m, n, bound)
	}
	m.Free()
	return nil
}

// heldPipe is a connection whose queue a Send found full, and the channel
// its sender closes when the queue has drained to half.
type heldPipe struct {
	p       *pubPipe
	drained chan struct{}
}

// waitDrained waits, up to bound (ShedWait) in all, for each connection in ps
// (whose queue send found full, starting a shedding episode) to drain to
// half, then queues m for those that did and drops it (counted) for the
// others, whose episode goes on.
func (s *Fanout) waitDrained(ps []heldPipe, m *mangos.Message, n int, bound time.Duration) {
	t := time.NewTimer(bound)
	defer t.Stop()
	expired := false
	for _, h := range ps {
		p := h.p
		if !expired {
			select {
			case <-h.drained:
			case <-p.closeq:
			case <-s.abort:
			case <-t.C:
				expired = true
			}
		}
		s.mu.Lock()
		gone := s.closed || s.pipes[p.p.ID()] != p
		p.qmu.Lock()
		ended := false
		select {
		case <-h.drained:
			ended = true
		default:
			ended = p.msgs <= p.lowMsgs && p.bytes <= p.lowBytes
		}
		p.held.Store(false)
		p.drained = nil
		if ended {
			// The episode ended while m was held: it ends with m queued.
			p.shed.Store(false)
			s.shedding.Add(-1)
		}
		if ended && !gone {
			m.Clone()
			s.out.Add(1)
			p.q = append(p.q, queued{m, n, false})
			p.msgs += n
			p.bytes += frameCost(m)
		}
		p.qmu.Unlock()
		if !ended || gone {
			s.dropped(p, n)
			if so := s.so.Load(); so != nil {
				if gone {
					so.C.DroppedClosed.Add(uint64(n))
				} else {
					so.C.DroppedQueueFull.Add(uint64(n))
				}
			}
		} else {
			select {
			case p.wake <- struct{}{}:
			default:
			}
		}
		s.mu.Unlock()
	}
}

// Shedding reports whether some connection's queue sheds (a cheap look:
// Shed may still refuse).
func (s *Fanout) Shedding() bool { return s.shedding.Load() > 0 }

// Shed counts n messages on topic as dropped for every connection that
// wants topic, and reports true, when each of those connections' queues
// sheds (it filled and has not yet drained to half): the publisher then
// drops the messages before encoding them, as the queues would drop their
// frames. It reports false, counting nothing, when any connection may
// take them, when none wants them, or with Hold. Frames start with their
// topic and a 0 byte (pub/sub's envelope).
func (s *Fanout) Shed(topic string, n int) bool {
	if s.shedding.Load() == 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.stall > 0 {
		return false
	}
	some := false
	for _, p := range s.list {
		want, sure := p.wantsTopic(topic)
		if !sure || want && (!p.shed.Load() || p.held.Load()) {
			return false
		}
		some = some || want
	}
	if !some {
		return false
	}
	so := s.so.Load()
	for _, p := range s.list {
		if want, _ := p.wantsTopic(topic); want {
			s.dropped(p, n)
			if so != nil {
				so.C.DroppedQueueFull.Add(uint64(n))
			}
		}
	}
	return true
}

// wantsTopic reports whether the subscriber's interest covers the frames
// on topic, and false for sure when it cannot tell without the frame (a
// prefix longer than the topic and its 0 byte).
func (p *pubPipe) wantsTopic(topic string) (want, sure bool) {
	in := p.interest.Load()
	if in == nil {
		return true, true
	}
	sure = true
	for _, pre := range *in {
		switch {
		case len(pre) > len(topic)+1:
			if pre[len(topic)] == 0 && string(pre[:len(topic)]) == topic {
				sure = false
			}
		case len(pre) == len(topic)+1:
			if pre[len(topic)] == 0 && string(pre[:len(topic)]) == topic {
				return true, true
			}
		case string(pre) == topic[:len(pre)]:
			return true, true
		}
	}
	return false, sure
}

// next takes the oldest queued frame, or reports false when none. s is
// p's Fanout.
func (p *pubPipe) next(s *Fanout) (queued, bool) {
	p.qmu.Lock()
	defer p.qmu.Unlock()
	if p.head == len(p.q) {
		return queued{}, false
	}
	f := p.q[p.head]
	p.q[p.head] = queued{}
	if p.room != nil {
		close(p.room)
		p.room = nil
	}
	p.head++
	p.msgs -= f.n
	if f.ctl {
		p.ctl--
	} else {
		p.bytes -= frameCost(f.m)
	}
	if p.shed.Load() && p.msgs <= p.lowMsgs && p.bytes <= p.lowBytes {
		if p.held.Load() {
			// A Send waits for this: it ends the episode, its frame first.
			if p.drained != nil {
				close(p.drained)
				p.drained = nil
			}
		} else {
			p.shed.Store(false)
			s.shedding.Add(-1)
		}
	}
	if p.head == len(p.q) {
		// Empty: start over at the front, keeping a modest buffer.
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
	return f, true
}

// sendHold is Send with backpressure (Hold): it waits for room in each
// connection's queue in turn.
func (s *Fanout) sendHold(m *mangos.Message, n int) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		m.Free()
		return protocol.ErrClosed
	}
	pipes := s.scratch[:0]
	for _, p := range s.pipes {
		pipes = append(pipes, p)
	}
	s.mu.Unlock()
	size := frameCost(m)
	var t *time.Timer
	for _, p := range pipes {
		if !p.wants(m) {
			continue
		}
		for {
			p.qmu.Lock()
			if p.msgs == 0 || p.msgs+n <= s.maxMsgs && p.bytes+size <= s.maxBytes {
				m.Clone()
				s.out.Add(1)
				p.q = append(p.q, queued{m, n, false})
				p.msgs += n
				p.bytes += size
				p.qmu.Unlock()
				select {
				case p.wake <- struct{}{}:
				default:
				}
				break
			}
			if p.room == nil {
				p.room = make(chan struct{})
			}
			room := p.room
			p.qmu.Unlock()
			if t == nil {
				t = time.NewTimer(s.stall)
				defer t.Stop()
			} else {
				t.Reset(s.stall)
			}
			select {
			case <-room:
				continue
			case <-p.closeq: // gone
			case <-s.abort:
				s.mu.Lock()
				s.dropped(p, n)
				s.mu.Unlock()
				if so := s.so.Load(); so != nil {
					so.C.DroppedClosed.Add(uint64(n))
				}
			case <-t.C:
				s.mu.Lock()
				s.dropped(p, n)
				s.mu.Unlock()
				s.cutOff(p)
			}
			break
		}
	}
	clear(pipes)
	s.scratch = pipes[:0]
	m.Free()
	return nil
}

// cutOff closes the connection of a subscriber that took nothing for the
// stall time.
func (s *Fanout) cutOff(p *pubPipe) {
	if so := s.so.Load(); so != nil {
		so.C.SendTimeouts.Add(1)
		so.C.SetLastError(p.addr, errors.New("subscriber stalled: connection closed (backpressure)"))
		so.logWarn(p.addr, "spmesh: subscriber stalled, connection closed", logx.Remote, p.addr, "stall", s.stall)
	}
	p.p.Close()
}

// dropped counts n messages lost for p. Called with s.mu held.
func (s *Fanout) dropped(p *pubPipe, n int) {
	first := p.dropped == 0
	p.dropped += uint64(n)
	if f := s.slow; f != nil {
		if now := time.Now(); first || now.Sub(p.reportedAt) >= s.slowGap {
			addr, total, since := p.addr, p.dropped, p.dropped-p.reported
			p.reported, p.reportedAt = total, now
			go f(addr, total, since) // never on the publish path
		}
	}
	so := s.so.Load()
	if so == nil {
		return
	}
	so.C.Dropped.Add(uint64(n))
	if first {
		so.logWarn(p.addr, "spmesh: subscriber not keeping up: messages for it dropped (it sees the gaps)",
			logx.Remote, p.addr, "queue_msgs", s.maxMsgs, "queue_bytes", s.maxBytes)
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
func (s fanoutProto) SendMsg(m *mangos.Message) error { return s.send(m, 1, false) }

// RecvMsg implements protocol.Protocol: a PUB socket receives nothing.
func (s fanoutProto) RecvMsg() (*mangos.Message, error) { return nil, protocol.ErrProtoOp }

// SetOption implements protocol.Protocol.
func (s fanoutProto) SetOption(name string, v any) error { return s.opts().set(name, v) }

// GetOption implements protocol.Protocol.
func (s fanoutProto) GetOption(name string) (any, error) { return s.opts().get(name) }

func (s *Fanout) opts() qlenOption { return qlenOption{&s.mu, &s.maxMsgs, s, optPub} }

// AddPipe implements protocol.Protocol.
func (s fanoutProto) AddPipe(pp protocol.Pipe) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return protocol.ErrClosed
	}
	p := &pubPipe{p: pp, closeq: make(chan struct{}), wake: make(chan struct{}, 1), lowMsgs: s.maxMsgs / 2, lowBytes: s.maxBytes / 2}
	pp.SetPrivate(p)
	s.pipes[pp.ID()] = p
	s.list = append(s.list, p)
	s.rebatch()
	go p.sender(s.Fanout)
	go p.receiver(s.Fanout)
	return nil
}

// RemovePipe implements protocol.Protocol.
func (s fanoutProto) RemovePipe(pp protocol.Pipe) {
	p := pp.GetPrivate().(*pubPipe)
	s.mu.Lock()
	delete(s.pipes, pp.ID())
	s.list = slices.DeleteFunc(s.list, func(q *pubPipe) bool { return q == p })
	s.rebatch()
	close(p.closeq)
	s.mu.Unlock()
}

// OpenContext implements protocol.Protocol: PUB has no contexts.
func (s fanoutProto) OpenContext() (protocol.Context, error) { return nil, protocol.ErrProtoOp }

// Info implements protocol.Protocol.
func (s fanoutProto) Info() protocol.Info {
	return protocol.Info{Self: mangos.ProtoPub, Peer: mangos.ProtoSub, SelfName: "pub", PeerName: "sub"}
}

// Close implements protocol.Protocol.
func (s fanoutProto) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return protocol.ErrClosed
	}
	s.closed = true
	return nil
}

// sender writes the queued frames to the connection. When the connection
// goes (or the socket closes), what is still queued is freed and its
// messages counted as dropped (DroppedClosed).
func (p *pubPipe) sender(s *Fanout) {
	c := s.c
	defer p.p.Close()
	defer func() {
		lost := 0
		for {
			f, ok := p.next(s)
			if !ok {
				break
			}
			if !f.ctl {
				lost += f.n
			}
			f.m.Free()
			s.out.Done(1)
		}
		if so := s.so.Load(); so != nil && lost > 0 {
			so.C.Dropped.Add(uint64(lost))
			so.C.DroppedClosed.Add(uint64(lost))
		}
	}()
	for {
		f, ok := p.next(s)
		if !ok {
			select {
			case <-p.closeq:
				return
			case <-p.wake:
			}
			continue
		}
		n := len(f.m.Body) // SendMsg takes f.m
		if err := p.p.SendMsg(f.m); err != nil {
			f.m.Free()
			s.out.Done(1)
			if so := s.so.Load(); so != nil && !f.ctl {
				so.C.Dropped.Add(uint64(f.n))
				so.C.DroppedClosed.Add(uint64(f.n))
			}
			return
		}
		s.out.Done(1)
		c.BytesSent.Add(uint64(n))
		select {
		case <-p.closeq:
			return
		default:
		}
	}
}

// wants reports whether the subscriber's interest covers frame m.
func (p *pubPipe) wants(m *mangos.Message) bool {
	in := p.interest.Load()
	if in == nil {
		return true
	}
	for _, pre := range *in {
		if len(m.Body) >= len(pre) && string(m.Body[:len(pre)]) == string(pre) {
			return true
		}
	}
	return false
}

// receiver reads what the subscriber sends: its interest frames (spmesh's
// SUB; a stock SUB sends nothing). Anything else, or a malformed one, is
// discarded and counted as a decode error.
func (p *pubPipe) receiver(s *Fanout) {
	defer p.p.Close()
	var env wire.Msg
	for {
		m := p.p.RecvMsg()
		if m == nil {
			return
		}
		s.c.BytesReceived.Add(uint64(len(m.Body)))
		err := wire.Decode(m.Body, &env)
		if err == nil && env.Kind != wire.KindInterest {
			err = errors.New("not an interest frame")
		}
		var pre [][]byte
		if err == nil {
			pre, err = wire.ParseInterest(env.Body)
		}
		if err == nil {
			// Copy out of the frame: it goes back to the pool.
			own := make([][]byte, len(pre))
			for i := range pre {
				own[i] = append([]byte(nil), pre[i]...)
			}
			p.interest.Store(&own)
			if p.frame.Load() != env.Frame {
				s.mu.Lock()
				p.frame.Store(env.Frame)
				s.rebatch()
				s.mu.Unlock()
			}
		} else if so := s.so.Load(); so != nil {
			so.C.DecodeErrors.Add(1)
		}
		m.Free()
	}
}
