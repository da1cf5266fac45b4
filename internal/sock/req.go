package sock

import (
	"context"
	"encoding/binary"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spmesh/spmesh"
	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol"
)

// Dispatch is spmesh's REQ protocol: it keeps one connection per peer and
// chooses the connection of each request itself, instead of giving it to
// whichever connection is ready first (mangos REQ, which starves late and
// slow peers). The choice: the peer with the fewest requests outstanding,
// among those below their credit (how many requests a peer takes at once);
// ties are broken round robin, so that sequential requests spread evenly
// over idle peers. A request may ask to avoid one peer (its resend after a
// timeout, a lost connection or a failure there): another one is chosen
// when one has room. While every peer is at its credit, a request waits for
// room (backpressure) until its ctx ends.
//
// A peer's credit is what it announced (SetCredit, from the credit its
// replies carry), else the default (SetDefaultCredit). A peer shared with
// other requesters may also report how many requests it is running for all
// of them together (SetLoad, from a worker's acks). The part of it that is
// not this requester's (the report less this requester's outstanding
// requests there, never negative) counts in the choice as requests
// outstanding, and is taken off the peer's credit, but never below 1, so
// that a peer busy with others' requests is still probed with one request
// whose reply refreshes the report. A peer that reports nothing (a REP
// peer, a Replier) is chosen by this requester's own requests alone. A request whose caller stops waiting (attempt
// timeout, ctx) gives its slot back at once: its late reply is dropped.
//
// The wire protocol is standard SP REQ: each request carries a 32-bit id
// with the high bit set in its header, which the REP peer echoes; replies
// with an id that matches no request in progress on that connection are
// dropped. Any REP peer (mangos, NNG, nanomsg) serves it.
type Dispatch struct {
	mu      sync.Mutex
	closed  bool
	pipes   []*reqPipe
	next    int // round-robin cursor into pipes
	byID    map[uint32]*Ticket
	credit  int             // default per-peer credit
	waiters []chan struct{} // requests waiting for room, first come first served
	wpool   sync.Pool       // chan struct{} (capacity 1)
	nextID  atomic.Uint32
	tickets sync.Pool
	c       *Counters // the socket's: bytes sent and received
	reply   Histogram // send-to-reply times of the requests answered
}

type reqPipe struct {
	d      *Dispatch
	p      protocol.Pipe
	addr   string
	sendMu sync.Mutex
	known  atomic.Int32 // credit announced (mirrors credit, read without d.mu)
	others atomic.Int32 // requests the peer runs for other requesters, as last reported (SetLoad)
	out    atomic.Int32 // requests outstanding; written under Dispatch.mu

	// Under Dispatch.mu.
	credit       int // announced; 0: the default
	gone         bool
	done, failed uint64
	replyTime    time.Duration // summed over done
}

// Ticket is one request sent on one connection, until its reply comes,
// its connection drops, or its caller gives up (Release).
type Ticket struct {
	d     *Dispatch
	id    uint32
	sent  time.Time
	pipe  *reqPipe
	ch    chan *mangos.Message // the reply; nil: the connection dropped
	outAt int                  // the pipe's requests outstanding once the reply came
}

// DefaultCredit is the credit of a peer that announced none.
const DefaultCredit = 32

// maxCredit bounds an announced credit.
const maxCredit = 1 << 16

// optDispatch is the option through which DispatchOf finds a socket's
// Dispatch.
const optDispatch = "SPMESH-DISPATCH"

func newReqSocket(c *Counters) mangos.Socket {
	d := &Dispatch{c: c, byID: map[uint32]*Ticket{}, credit: DefaultCredit}
	d.wpool.New = func() any { return make(chan struct{}, 1) }
	d.tickets.New = func() any { return &Ticket{d: d, ch: make(chan *mangos.Message, 1)} }
	return protocol.MakeSocket(dispatchProto{d})
}

// dispatchProto is Dispatch as mangos drives it: the protocol.Protocol
// methods live on it, not on Dispatch, so that a pattern package holding a
// Dispatch sends through Send and Ticket only.
type dispatchProto struct{ *Dispatch }

// DispatchOf returns the Dispatch of a socket opened with protocol
// Dispatcher (nil for any other).
func DispatchOf(so *Socket) *Dispatch {
	v, err := so.m.GetOption(optDispatch)
	d, _ := v.(*Dispatch)
	if err != nil || d == nil {
		return nil
	}
	return d
}

// SetDefaultCredit sets the credit of peers that announced none.
func (d *Dispatch) SetDefaultCredit(n int) {
	d.mu.Lock()
	d.credit = min(max(n, 1), maxCredit)
	d.wakeAll()
	d.mu.Unlock()
}

// Send chooses a connection for m (see Dispatch), waiting for room while
// every peer is at its credit, and sends m on it with a fresh request id.
// avoid is a connection id (from Ticket.Pipe) not to use while another has
// room; 0 avoids none. With no connection at all it returns
// protocol.ErrNoPeers at once, unless wait, when it waits for one. It
// returns ctx's error when ctx ends first and protocol.ErrClosed once
// closed. It takes m.
func (d *Dispatch) Send(ctx context.Context, f *Frame, avoid uint32, wait bool) (*Ticket, error) {
	m := f.msg()
	d.mu.Lock()
	var p *reqPipe
	for {
		if d.closed {
			d.mu.Unlock()
			m.Free()
			return nil, protocol.ErrClosed
		}
		if len(d.pipes) == 0 && !wait {
			d.mu.Unlock()
			m.Free()
			return nil, protocol.ErrNoPeers
		}
		if p = d.choose(avoid); p != nil {
			break
		}
		w := d.wpool.Get().(chan struct{})
		d.waiters = append(d.waiters, w)
		d.mu.Unlock()
		select {
		case <-w:
			d.wpool.Put(w)
		case <-ctx.Done():
			d.mu.Lock()
			if !d.unwait(w) {
				// Woken meanwhile: pass the room on.
				<-w
				d.wakeOne()
			}
			d.mu.Unlock()
			d.wpool.Put(w)
			m.Free()
			return nil, ctx.Err()
		}
		d.mu.Lock()
	}
	t := d.tickets.Get().(*Ticket)
	t.pipe = p
	for {
		t.id = d.nextID.Add(1) | 0x80000000
		if _, dup := d.byID[t.id]; !dup {
			break
		}
	}
	t.sent = time.Now()
	d.byID[t.id] = t
	busy := p.out.Add(1) > 1
	d.mu.Unlock()

	m.Header = binary.BigEndian.AppendUint32(m.Header[:0], t.id)
	if busy {
		// Other requests are outstanding on p: their replies come in
		// batches, each waking a caller that sends its next request.
		// Yielding once lets those callers queue theirs before the
		// transport's flusher wakes for this one, so one write carries
		// several frames instead of one each (the acked pipeline bench
		// went from 1.37 to 1.13 write syscalls per job: 1.08 to 1.19
		// requests and 2.3 to 3.4 acks per write). A lone request does
		// not yield: its latency is untouched.
		runtime.Gosched()
	}
	n := len(m.Body) // SendMsg takes m
	p.sendMu.Lock()
	err := p.p.SendMsg(m)
	p.sendMu.Unlock()
	if err == nil {
		d.c.BytesSent.Add(uint64(n))
	} else {
		m.Free()
		// The connection is closing: the request is lost, which Wait
		// reports (unless its removal did already).
		d.mu.Lock()
		d.finish(t, nil)
		d.mu.Unlock()
	}
	return t, nil
}

// choose returns the connection for the next request, or nil when every
// one is at its credit. Called with d.mu held.
func (d *Dispatch) choose(avoid uint32) *reqPipe {
	n := len(d.pipes)
	var best, other *reqPipe
	bi, bestLoad := 0, 0
	for k := range n {
		i := (d.next + k) % n
		p := d.pipes[i]
		out := int(p.out.Load())
		if out >= p.limit(d.credit) {
			continue
		}
		load := out + int(p.others.Load())
		if avoid != 0 && p.p.ID() == avoid {
			other = p
			continue
		}
		if best == nil || load < bestLoad {
			best, bi, bestLoad = p, i, load
		}
	}
	if best == nil {
		return other
	}
	d.next = (bi + 1) % n
	return best
}

// finish ends t with reply m (nil: lost) if it is still in progress.
// Called with d.mu held.
func (d *Dispatch) finish(t *Ticket, m *mangos.Message) bool {
	if d.byID[t.id] != t {
		return false
	}
	delete(d.byID, t.id)
	t.outAt = int(t.pipe.out.Add(-1))
	if m != nil {
		rt := time.Since(t.sent)
		t.pipe.done++
		t.pipe.replyTime += rt
		d.reply.Observe(rt)
	} else {
		t.pipe.failed++
	}
	t.ch <- m
	d.wakeOne()
	return true
}

// wakeOne tells the request that waited longest for room to look again
// (one slot freed). Called with d.mu held.
func (d *Dispatch) wakeOne() {
	if len(d.waiters) == 0 {
		return
	}
	w := d.waiters[0]
	copy(d.waiters, d.waiters[1:])
	d.waiters[len(d.waiters)-1] = nil
	d.waiters = d.waiters[:len(d.waiters)-1]
	w <- struct{}{}
}

// wakeAll tells every request waiting for room to look again (a peer
// came, a credit changed, or the Dispatch closed). Called with d.mu held.
func (d *Dispatch) wakeAll() {
	for _, w := range d.waiters {
		w <- struct{}{}
	}
	clear(d.waiters)
	d.waiters = d.waiters[:0]
}

// unwait removes w from the waiters; false if it was woken already.
// Called with d.mu held.
func (d *Dispatch) unwait(w chan struct{}) bool {
	for i, x := range d.waiters {
		if x == w {
			d.waiters = append(d.waiters[:i], d.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// Pipe returns the id of the connection t was sent on.
func (t *Ticket) Pipe() uint32 { return t.pipe.p.ID() }

// Wait waits for t's reply (the caller frees it). It returns
// protocol.ErrRecvTimeout after timeout (0: none), protocol.ErrCanceled
// when t's connection dropped, ctx's error when ctx ends, and
// protocol.ErrClosed when the Dispatch closed. Either way the caller then
// calls Release.
func (t *Ticket) Wait(ctx context.Context, timeout time.Duration) (*Frame, error) {
	var tc <-chan time.Time
	if timeout > 0 {
		tm := time.NewTimer(timeout)
		defer tm.Stop()
		tc = tm.C
	}
	select {
	case m := <-t.ch:
		if m == nil {
			t.d.mu.Lock()
			closed := t.d.closed
			t.d.mu.Unlock()
			if closed {
				return nil, protocol.ErrClosed
			}
			return nil, protocol.ErrCanceled
		}
		return frame(m), nil
	case <-tc:
		return nil, protocol.ErrRecvTimeout
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// SetCredit records the credit that t's peer announced (in its reply).
func (t *Ticket) SetCredit(n int) {
	n = min(max(n, 1), maxCredit)
	if int(t.pipe.known.Load()) == n {
		return
	}
	t.pipe.known.Store(int32(n))
	d := t.d
	d.mu.Lock()
	if t.pipe.credit != n {
		t.pipe.credit = n
		d.wakeAll()
	}
	d.mu.Unlock()
}

// SetLoad records the number of requests that t's peer reported running
// for every requester together (in its reply, which no longer counts):
// what this requester's requests outstanding there when the reply came do
// not account for runs for others (see Dispatch). Replies on one
// connection come in order, so each of this requester's requests the peer
// was running when it replied was still outstanding then: the estimate
// never exceeds what the others run. 0 clears it.
func (t *Ticket) SetLoad(running int) {
	p := t.pipe
	others := int32(min(max(running-t.outAt, 0), maxCredit))
	if p.others.Load() == others {
		return // the usual case: no write to the shared counter
	}
	if old := p.others.Swap(others); old > others {
		// Room grew: requests waiting for room look again.
		d := t.d
		d.mu.Lock()
		if len(d.waiters) > 0 {
			d.wakeAll()
		}
		d.mu.Unlock()
	}
}

// limit is how many requests p may have outstanding: its credit (def when
// it announced none) less what it runs for other requesters, at least 1.
// Called with d.mu held.
func (p *reqPipe) limit(def int) int {
	c := p.credit
	if c == 0 {
		c = def
	}
	if o := int(p.others.Load()); o > 0 {
		c = max(1, c-o)
	}
	return c
}

// Release ends t: if no reply came, its slot is given back and a late
// reply is dropped. t must not be used afterwards.
func (t *Ticket) Release() {
	d := t.d
	d.mu.Lock()
	if d.byID[t.id] == t {
		delete(d.byID, t.id)
		t.pipe.out.Add(-1)
		t.pipe.failed++
		d.wakeOne()
	}
	d.mu.Unlock()
	select {
	case m := <-t.ch:
		if m != nil {
			m.Free()
		}
	default:
	}
	t.pipe = nil
	d.tickets.Put(t)
}

// ReplyTime returns the distribution of the send-to-reply times of the
// requests answered (replies dropped as late are not in it).
func (d *Dispatch) ReplyTime() spmesh.Histogram { return d.reply.Snapshot() }

// Peers returns the counters of the connected peers.
func (d *Dispatch) Peers() []spmesh.PeerStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]spmesh.PeerStats, 0, len(d.pipes))
	for _, p := range d.pipes {
		c := p.credit
		if c == 0 {
			c = d.credit
		}
		ps := spmesh.PeerStats{Addr: p.addr, Credit: c, InFlight: int(p.out.Load()), Done: p.done, Failed: p.failed, Others: int(p.others.Load())}
		if p.done > 0 {
			ps.MeanReplyTime = p.replyTime / time.Duration(p.done)
		}
		out = append(out, ps)
	}
	return out
}

// SendMsg implements protocol.Protocol: requests go through Send.
func (d dispatchProto) SendMsg(*mangos.Message) error { return protocol.ErrProtoOp }

// RecvMsg implements protocol.Protocol: replies come through Ticket.Wait.
func (d dispatchProto) RecvMsg() (*mangos.Message, error) { return nil, protocol.ErrProtoOp }

// SetOption implements protocol.Protocol.
func (d dispatchProto) SetOption(string, any) error { return protocol.ErrBadOption }

// GetOption implements protocol.Protocol.
func (d dispatchProto) GetOption(name string) (any, error) {
	switch name {
	case optDispatch:
		return d.Dispatch, nil
	case mangos.OptionRaw:
		return false, nil
	}
	return nil, protocol.ErrBadOption
}

// AddPipe implements protocol.Protocol.
func (d dispatchProto) AddPipe(pp protocol.Pipe) error {
	// The peer's address, for Peers: known here, before any request can
	// go to it. (A pipe event hook registered after Open missed the
	// connections that the socket's dials made meanwhile.)
	var addr string
	if mp, ok := pp.(mangos.Pipe); ok {
		addr = pipeAddr(mp)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return protocol.ErrClosed
	}
	p := &reqPipe{d: d.Dispatch, p: pp, addr: addr}
	pp.SetPrivate(p)
	d.pipes = append(d.pipes, p)
	d.wakeAll()
	go p.receiver()
	return nil
}

// RemovePipe implements protocol.Protocol: the requests outstanding on pp
// are lost (their callers resend them).
func (d dispatchProto) RemovePipe(pp protocol.Pipe) {
	p, _ := pp.GetPrivate().(*reqPipe)
	if p == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if p.gone {
		return
	}
	p.gone = true
	for i, q := range d.pipes {
		if q == p {
			d.pipes = append(d.pipes[:i], d.pipes[i+1:]...)
			if d.next > i {
				d.next--
			}
			break
		}
	}
	if len(d.pipes) > 0 {
		d.next %= len(d.pipes)
	} else {
		d.next = 0
	}
	for _, t := range d.byID {
		if t.pipe == p {
			d.finish(t, nil)
		}
	}
	if len(d.pipes) == 0 {
		d.wakeAll() // to fail with ErrNoPeers, unless they wait for a peer
	}
}

// OpenContext implements protocol.Protocol: no contexts (Send and Ticket
// serve any number of concurrent requests).
func (d dispatchProto) OpenContext() (protocol.Context, error) { return nil, protocol.ErrProtoOp }

// Info implements protocol.Protocol.
func (d dispatchProto) Info() protocol.Info {
	return protocol.Info{Self: mangos.ProtoReq, Peer: mangos.ProtoRep, SelfName: "req", PeerName: "rep"}
}

// Close implements protocol.Protocol: requests in progress end with
// protocol.ErrClosed.
func (d dispatchProto) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return protocol.ErrClosed
	}
	d.closed = true
	for _, t := range d.byID {
		d.finish(t, nil)
	}
	d.wakeAll()
	return nil
}

// receiver hands each reply to its request.
func (p *reqPipe) receiver() {
	defer p.p.Close()
	d := p.d
	for {
		m := p.p.RecvMsg()
		if m == nil {
			return
		}
		d.c.BytesReceived.Add(uint64(len(m.Body) - min(len(m.Body), 4))) // not the request id
		if len(m.Body) < 4 || m.Body[0]&0x80 == 0 {
			// Not a reply to a request of ours (a REP peer echoes the
			// id, whose high bit is set).
			m.Free()
			continue
		}
		m.Header = append(m.Header[:0], m.Body[:4]...)
		m.Body = m.Body[4:]
		id := binary.BigEndian.Uint32(m.Header)
		d.mu.Lock()
		t := d.byID[id]
		if t == nil || t.pipe != p || !d.finish(t, m) {
			m.Free() // late (abandoned) or from the wrong peer
		}
		d.mu.Unlock()
	}
}
