package sock

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol"
)

// Poll is spmesh's SURVEYOR protocol: the standard SP SURVEYOR wire
// protocol (each question carries a 32-bit survey id with the high bit set
// in its header, which the respondent echoes first in its answer), so any
// RESPONDENT (mangos, NNG, nanomsg) answers it, but with its own queues
// and counters, so that no answer is discarded uncounted. (mangos'
// surveyor frees, silently, the answers that overflow a survey's queue,
// that arrive after it ended, or that are still queued when it ends.)
//
// Each survey (SurveyCtx.Start) has a queue of at most qlen answers. An
// answer that arrives is, exactly once: queued for Recv; or dropped and
// counted in Dropped, by cause: DroppedQueueFull when its survey's queue
// is full, DroppedLate when its survey has ended (its id one this socket
// issued; the answers still queued when a survey ends count so too),
// DroppedClosed when still queued as the socket closes; or, when it is no
// answer (shorter than a survey id, or an id this socket never issued),
// counted in DecodeErrors. A question is queued for each connection (at
// most the socket's send queue per connection); a connection whose queue
// is full misses it, counted in Dropped (DroppedQueueFull).
type Poll struct {
	c *Counters // the socket's

	mu      sync.Mutex
	closed  bool
	closedq chan struct{}
	pipes   map[uint32]*pollPipe
	surveys map[uint32]*survey // open surveys by id
	qlen    int                // a new context's answer queue (OptionReadQLen)
	sendq   int                // questions queued per connection (OptionWriteQLen)

	firstID uint32        // ids after firstID, up to lastID, were issued here
	lastID  atomic.Uint32 // (the high bit aside)
}

type pollPipe struct {
	p      protocol.Pipe
	closeq chan struct{}
	sendq  chan *mangos.Message
}

// survey is one survey in progress: its answers queue in q until Recv
// takes them. ended and the map entry change under Poll.mu; q receives
// only under Poll.mu, and only while the survey is open.
type survey struct {
	id    uint32
	q     chan *mangos.Message
	done  chan struct{} // closed when the survey ends
	timer *time.Timer   // ends it at its expiry
	ended bool
}

// pollCtx is the state behind a SurveyCtx: its current survey and a timer
// reused by every Recv.
type pollCtx struct {
	p     *Poll
	qlen  int
	cur   *survey // under Poll.mu
	timer *time.Timer
}

// optPoll is the option through which OpenSurvey finds a socket's Poll.
const optPoll = "SPMESH-POLL"

// pollDefaultQLen is a survey's answer queue until the socket sets one.
const pollDefaultQLen = 128

const surveyIDBit = 0x80000000

func newSurveyorSocket(c *Counters) mangos.Socket {
	p := &Poll{c: c, closedq: make(chan struct{}), pipes: map[uint32]*pollPipe{},
		surveys: map[uint32]*survey{}, qlen: pollDefaultQLen, sendq: pollDefaultQLen}
	p.firstID = uint32(time.Now().UnixNano()) // quasi-random, as mangos
	p.lastID.Store(p.firstID)
	return protocol.MakeSocket(pollProto{p})
}

// pollProto is Poll as mangos drives it (the protocol.Protocol methods).
type pollProto struct{ *Poll }

// issued reports whether id is a survey id this socket sent.
func (p *Poll) issued(id uint32) bool {
	if id&surveyIDBit == 0 {
		return false
	}
	off := (id - p.firstID) &^ surveyIDBit
	return off >= 1 && off <= (p.lastID.Load()-p.firstID)&^surveyIDBit
}

// start opens a new survey on c, ending the one c had, sends f to every
// connection, and returns the number of connections it was queued for.
// It takes f.
func (c *pollCtx) start(f *Frame, qlen int, expire time.Duration) (int, error) {
	p := c.p
	m := f.msg()
	sv := &survey{id: p.lastID.Add(1) | surveyIDBit, q: make(chan *mangos.Message, qlen), done: make(chan struct{})}
	m.MakeUnique()
	m.Header = binary.BigEndian.AppendUint32(m.Header[:0], sv.id)

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		m.Free()
		return 0, protocol.ErrClosed
	}
	old := c.cur
	c.cur = sv
	p.surveys[sv.id] = sv
	sv.timer = time.AfterFunc(expire, func() { p.end(sv, &p.c.DroppedLate) })
	pipes := make([]*pollPipe, 0, len(p.pipes))
	for _, pp := range p.pipes {
		pipes = append(pipes, pp)
	}
	p.mu.Unlock()
	if old != nil {
		p.end(old, &p.c.DroppedLate)
	}

	sent := 0
	for _, pp := range pipes {
		m.Clone()
		select {
		case pp.sendq <- m:
			sent++
		default:
			m.Free()
			p.c.Drop(1, &p.c.DroppedQueueFull)
		}
	}
	m.Free()
	return sent, nil
}

// end ends sv, if open: answers to it from now on are late, and those it
// still holds are dropped, counted in cause.
func (p *Poll) end(sv *survey, cause *atomic.Uint64) {
	p.mu.Lock()
	if sv.ended {
		p.mu.Unlock()
		return
	}
	sv.ended = true
	delete(p.surveys, sv.id)
	sv.timer.Stop()
	close(sv.done)
	p.mu.Unlock()
	// Nothing is queued to sv any more (only under p.mu, while open): what
	// is left is taken here or by a Recv under way, each frame once.
	p.c.dropQueued(sv.q, cause)
}

// recv waits at most timeout for the next answer to c's survey.
func (c *pollCtx) recv(timeout time.Duration) (*mangos.Message, error) {
	p := c.p
	p.mu.Lock()
	sv, closed := c.cur, p.closed
	p.mu.Unlock()
	if closed {
		return nil, protocol.ErrClosed
	}
	if sv == nil {
		return nil, protocol.ErrProtoState
	}
	select { // an answer waiting: no timer
	case m := <-sv.q:
		return m, nil
	default:
	}
	if c.timer == nil {
		c.timer = time.NewTimer(timeout)
	} else {
		c.timer.Reset(timeout)
	}
	defer c.timer.Stop()
	select {
	case m := <-sv.q:
		return m, nil
	case <-sv.done:
		select { // the closing of the socket takes precedence
		case <-p.closedq:
			return nil, protocol.ErrClosed
		default:
			return nil, protocol.ErrProtoState
		}
	case <-p.closedq:
		return nil, protocol.ErrClosed
	case <-c.timer.C:
		return nil, protocol.ErrRecvTimeout
	}
}

// stop ends c's survey, if any (its queued answers counted as late).
func (c *pollCtx) stop() {
	c.p.mu.Lock()
	sv := c.cur
	c.cur = nil
	c.p.mu.Unlock()
	if sv != nil {
		c.p.end(sv, &c.p.c.DroppedLate)
	}
}

// receiver takes the answers arriving on pp to their surveys.
func (p *Poll) receiver(pp *pollPipe) {
	defer pp.p.Close()
	for {
		m := pp.p.RecvMsg()
		if m == nil {
			return
		}
		if len(m.Body) < 4 {
			p.c.BytesReceived.Add(uint64(len(m.Body)))
			p.c.DecodeErrors.Add(1) // no survey id: not an answer
			m.Free()
			continue
		}
		m.Header = append(m.Header, m.Body[:4]...)
		m.Body = m.Body[4:]
		p.c.BytesReceived.Add(uint64(len(m.Body))) // the answer, its id aside
		id := binary.BigEndian.Uint32(m.Header)
		p.mu.Lock()
		sv := p.surveys[id]
		queued := false
		if sv != nil {
			select {
			case sv.q <- m:
				queued = true
			default:
			}
		}
		p.mu.Unlock()
		if queued {
			continue
		}
		m.Free()
		switch {
		case sv != nil:
			p.c.Drop(1, &p.c.DroppedQueueFull)
		case p.issued(id):
			p.c.Drop(1, &p.c.DroppedLate)
		default:
			p.c.DecodeErrors.Add(1) // not an id of ours: not an answer
		}
	}
}

// sender writes the questions queued for pp to its connection.
func (p *Poll) sender(pp *pollPipe) {
	defer pp.p.Close()
	for {
		select {
		case <-pp.closeq:
			return
		case m := <-pp.sendq:
			n := len(m.Body)
			if err := pp.p.SendMsg(m); err != nil {
				m.Free()
				p.c.Drop(1, &p.c.DroppedClosed)
				return
			}
			p.c.BytesSent.Add(uint64(n))
		}
	}
}

// AddPipe implements protocol.Protocol.
func (p pollProto) AddPipe(pp protocol.Pipe) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return protocol.ErrClosed
	}
	q := &pollPipe{p: pp, closeq: make(chan struct{}), sendq: make(chan *mangos.Message, p.sendq)}
	pp.SetPrivate(q)
	p.pipes[pp.ID()] = q
	go p.sender(q)
	go p.receiver(q)
	return nil
}

// RemovePipe implements protocol.Protocol: the questions still queued for
// the connection are lost with it, counted in DroppedClosed.
func (p pollProto) RemovePipe(pp protocol.Pipe) {
	q := pp.GetPrivate().(*pollPipe)
	p.mu.Lock()
	if _, ok := p.pipes[pp.ID()]; !ok {
		p.mu.Unlock()
		return
	}
	delete(p.pipes, pp.ID())
	close(q.closeq)
	p.mu.Unlock()
	p.c.dropQueued(q.sendq, &p.c.DroppedClosed)
}

// SendMsg implements protocol.Protocol: questions go through SurveyCtx.
func (p pollProto) SendMsg(*mangos.Message) error { return protocol.ErrProtoOp }

// RecvMsg implements protocol.Protocol: answers come through SurveyCtx.
func (p pollProto) RecvMsg() (*mangos.Message, error) { return nil, protocol.ErrProtoOp }

// OpenContext implements protocol.Protocol: see OpenSurvey.
func (p pollProto) OpenContext() (protocol.Context, error) { return nil, protocol.ErrProtoOp }

// SetOption implements protocol.Protocol.
func (p pollProto) SetOption(name string, v any) error {
	n, ok := v.(int)
	switch name {
	case mangos.OptionReadQLen:
		if !ok || n < 0 {
			return protocol.ErrBadValue
		}
		p.mu.Lock()
		p.qlen = n
		p.mu.Unlock()
		return nil
	case mangos.OptionWriteQLen:
		if !ok || n < 0 {
			return protocol.ErrBadValue
		}
		p.mu.Lock()
		p.sendq = n
		p.mu.Unlock()
		return nil
	}
	return protocol.ErrBadOption
}

// GetOption implements protocol.Protocol.
func (p pollProto) GetOption(name string) (any, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch name {
	case optPoll:
		return p.Poll, nil
	case mangos.OptionRaw:
		return false, nil
	case mangos.OptionReadQLen:
		return p.qlen, nil
	case mangos.OptionWriteQLen:
		return p.sendq, nil
	}
	return nil, protocol.ErrBadOption
}

// Info implements protocol.Protocol.
func (p pollProto) Info() protocol.Info {
	return protocol.Info{Self: mangos.ProtoSurveyor, Peer: mangos.ProtoRespondent, SelfName: "surveyor", PeerName: "respondent"}
}

// Close implements protocol.Protocol: the surveys end, the answers they
// still hold counted in DroppedClosed.
func (p pollProto) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return protocol.ErrClosed
	}
	p.closed = true
	close(p.closedq)
	open := make([]*survey, 0, len(p.surveys))
	for _, sv := range p.surveys {
		open = append(open, sv)
	}
	p.mu.Unlock()
	for _, sv := range open {
		p.end(sv, &p.c.DroppedClosed)
	}
	return nil
}
