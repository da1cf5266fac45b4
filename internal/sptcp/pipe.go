package sptcp

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"sync"
	"time"

	"go.nanomsg.org/mangos/v3"
)

const (
	// maxFrame caps a length prefix when no receive limit is set.
	maxFrame = 1 << 40
	// growStep is how many bytes beyond those already buffered a received
	// body may be allocated at once; past it the body grows as bytes
	// arrive.
	growStep = 64 << 10
	// PooledMax is the largest frame read into a buffer from mangos'
	// pool; a larger one gets a buffer of its own, of its exact size, so
	// that a receiver keeps it as is rather than copying out of it (the
	// batch frames of pub/sub go up to 64 KiB).
	PooledMax = 8 << 10
	// giveWayBelow is the batch size (bytes waiting) under which the
	// flusher may give way before writing: past it a write's fixed cost
	// is small next to its bytes.
	giveWayBelow = 16 << 10
	// maxProbeGap bounds the wake-ups between two give-way probes while
	// giving way gains nothing (as for a lone request).
	maxProbeGap = 64
)

// giveWay decides whether the flusher gives way once (runtime.Gosched)
// before it takes the buffer, so that senders about to queue more frames
// (a worker acking a batch of jobs read at once, a producer refilling its
// window from those acks) get them into the same write. It gives way when
// a Send queued behind a waiting frame or a write in progress, and while
// the last give-way gained frames; otherwise it probes on a wake-up, with
// a gap that doubles up to maxProbeGap while probes gain nothing, so a
// lone message on a quiet pipe goes out at once (all but one in 65).
// Guarded by the pipe's mu.
type giveWay struct {
	contended bool // a Send found a frame waiting or a write in progress
	paying    bool // the last give-way gained frames
	gap, wait int  // wake-ups between probes, and left until the next
}

// want reports whether to give way before taking a batch.
func (g *giveWay) want() bool {
	if g.contended || g.paying {
		return true
	}
	if g.wait > 0 {
		g.wait--
		return false
	}
	return true
}

// gave records whether giving way gained frames.
func (g *giveWay) gave(gained bool) {
	g.paying = gained
	if gained {
		g.gap, g.wait = 0, 0
		return
	}
	g.gap = min(max(2*g.gap, 1), maxProbeGap)
	g.wait = g.gap
}

// ref is a message body written by reference, at offset at of the buffer.
type ref struct {
	at int
	m  *mangos.Message
}

// pipe is one established SP connection.
type pipe struct {
	c      net.Conn // what is read and written (a *tls.Conn for TLS)
	raw    net.Conn // the TCP connection underneath
	br     *bufio.Reader
	small  int // reads in a row that filled under 1/8 of the buffer
	resize int // the read buffer's next size, applied once it is empty

	shrinkEvery          time.Duration
	lastFull, lastShrink time.Time // read side
	lastBigWrite         time.Time // under mu
	maxRecv              int
	opts                 snapshot

	// Read side, owned by the Recv goroutine.
	peer       uint16 // the peer's protocol
	remote     string
	lim        Limits
	obs        Observer
	idle       bool      // no frame exchanged yet, and IdleTimeout applies
	idleEnd    time.Time // when an idle connection is closed
	frameStart time.Time // first sight of the frame being read; zero between frames
	frameSize  uint64    // its claimed size, once known
	armed      time.Time // the read deadline set on the connection; zero for none
	onClose    func()    // the listener's slot release, if any

	mu        sync.Mutex
	space     sync.Cond // Send waits here for the buffer to drain
	waiters   int
	buf       []byte // frames waiting for the flusher
	refs      []ref  // bodies to splice into buf when writing
	pending   int    // bytes in buf and refs
	frames    int    // frames in buf, refs
	give      giveWay
	spare     []byte
	spareRefs []ref
	writing   bool // the flusher is in a write
	sent      bool // a frame was queued (ends the idle phase)
	closed    bool
	err       error         // sticky write error
	flushedq  chan struct{} // closed when the flusher is idle and a Flushed waits

	wake      chan struct{} // capacity 1: there is something to write
	done      chan struct{} // closed when the flusher returns
	closeOnce sync.Once
}

// handshake runs the TLS handshake (if c is TLS) and exchanges SP headers on
// c (whose TCP connection is raw), all before dl, and returns a running
// pipe, or closes c, reports the failure to the observer and returns an
// error. accepted says the connection came from a listener.
func handshake(c, raw net.Conn, proto mangos.ProtocolInfo, s snapshot, dl time.Time, accepted bool) (*pipe, error) {
	remote := raw.RemoteAddr().String()
	fail := func(what string, err error) (*pipe, error) {
		raw.Close()
		if isTimeout(err) {
			err = fmt.Errorf("%w (%s): %v", ErrHandshakeTimeout, what, err)
			s.obs.ConnTimeout(remote, err)
		} else {
			err = fmt.Errorf("%s handshake: %w", what, err)
			s.obs.HandshakeError(remote, err)
		}
		return nil, err
	}
	if err := c.SetDeadline(dl); err != nil {
		return fail("SP", err)
	}
	if tc, ok := c.(*tls.Conn); ok {
		if err := tc.Handshake(); err != nil {
			return fail("TLS", err)
		}
	}
	hdr := [8]byte{0, 'S', 'P', 0, byte(proto.Self >> 8), byte(proto.Self), 0, 0}
	if _, err := c.Write(hdr[:]); err != nil {
		return fail("SP", err)
	}
	br := bufio.NewReaderSize(c, MinReadBuffer)
	got, err := br.Peek(8)
	if err != nil {
		if _, ok := c.(*tls.Conn); ok && !isTimeout(err) && !errors.Is(err, io.EOF) {
			// A TLS 1.3 client learns that the server refused its
			// certificate only here, from the server's alert.
			return fail("TLS", err)
		}
		return fail("SP", err)
	}
	switch {
	case got[0] != 0 || got[1] != 'S' || got[2] != 'P' || got[6] != 0 || got[7] != 0:
		return fail("SP", mangos.ErrBadHeader)
	case got[3] != 0:
		return fail("SP", mangos.ErrBadVersion)
	case binary.BigEndian.Uint16(got[4:]) != proto.Peer:
		return fail("SP", fmt.Errorf("%w: peer speaks %#x, want %#x", mangos.ErrBadProto, binary.BigEndian.Uint16(got[4:]), proto.Peer))
	}
	_, _ = br.Discard(8)
	p := &pipe{
		c: c, raw: raw, br: br, maxRecv: s.maxRecv, opts: s, shrinkEvery: time.Second,
		peer: proto.Peer, remote: remote, lim: s.limits, obs: s.obs,
		buf:  make([]byte, 0, 4096),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	if err := c.SetWriteDeadline(time.Time{}); err != nil {
		return fail("SP", err)
	}
	// A connection that came in must exchange a frame within IdleTimeout,
	// unless its peer is one that never sends (SUB, PULL).
	p.idle = accepted && s.limits.IdleTimeout > 0 && proto.Peer != mangos.ProtoSub && proto.Peer != mangos.ProtoPull
	var rd time.Time
	if p.idle {
		p.idleEnd = time.Now().Add(s.limits.IdleTimeout)
		rd = p.idleEnd
	}
	if err := c.SetReadDeadline(rd); err != nil {
		return fail("SP", err)
	}
	p.armed = rd
	p.space.L = &p.mu
	go p.flush()
	return p, nil
}

// Send queues m's frame for the flusher and returns; it blocks only while
// HighWater bytes or more are waiting. On success m is released.
func (p *pipe) Send(m *mangos.Message) error {
	hl, bl := len(m.Header), len(m.Body)
	p.mu.Lock()
	for p.pending >= HighWater && p.err == nil && !p.closed {
		p.waiters++
		p.space.Wait()
		p.waiters--
	}
	if p.closed || p.err != nil {
		err := p.err
		p.mu.Unlock()
		if err == nil {
			err = mangos.ErrClosed
		}
		return err
	}
	p.buf = binary.BigEndian.AppendUint64(p.buf, uint64(hl+bl))
	p.buf = append(p.buf, m.Header...)
	byRef := bl >= RefThreshold
	if byRef {
		p.refs = append(p.refs, ref{at: len(p.buf), m: m})
	} else {
		p.buf = append(p.buf, m.Body...)
	}
	if p.writing || p.frames > 0 {
		p.give.contended = true
	}
	p.pending += 8 + hl + bl
	p.frames++
	p.sent = true
	idle := !p.writing
	p.mu.Unlock()
	if idle {
		select {
		case p.wake <- struct{}{}:
		default: // already woken
		}
	}
	if !byRef {
		m.Free()
	}
	return nil
}

// flush writes whatever accumulated while the previous write was in the
// kernel, until the pipe closes.
func (p *pipe) flush() {
	defer close(p.done)
	var iov net.Buffers
	for {
		<-p.wake
		p.mu.Lock()
		for p.pending > 0 && p.err == nil {
			if p.pending < giveWayBelow && p.waiters == 0 && !p.closed && p.give.want() {
				n := p.frames
				p.mu.Unlock()
				runtime.Gosched()
				p.mu.Lock()
				p.give.gave(p.frames > n)
			}
			p.give.contended = false
			buf, refs := p.buf, p.refs
			p.buf, p.refs = p.spare[:0], p.spareRefs[:0]
			p.spare, p.spareRefs = nil, nil
			p.pending, p.frames = 0, 0
			p.writing = true
			if p.waiters > 0 {
				p.space.Broadcast()
			}
			p.mu.Unlock()

			var err error
			if len(refs) == 0 {
				_, err = p.c.Write(buf)
			} else {
				iov = iov[:0]
				at := 0
				for _, r := range refs {
					iov = append(iov, buf[at:r.at], r.m.Body)
					at = r.at
				}
				iov = append(iov, buf[at:])
				w := iov // WriteTo consumes its receiver
				_, err = w.WriteTo(p.c)
				for i := range refs {
					refs[i].m.Free()
					refs[i] = ref{}
				}
				clear(iov)
			}

			p.mu.Lock()
			p.writing = false
			if err != nil {
				p.err = err
				p.space.Broadcast()
				p.raw.Close() // the reader notices, and mangos closes the pipe
			}
			if p.keep(buf) {
				p.spare = buf[:0]
			}
			p.spareRefs = refs[:0]
		}
		closing := p.closed
		if p.flushedq != nil {
			close(p.flushedq) // nothing pending, not writing
			p.flushedq = nil
		}
		p.mu.Unlock()
		if closing {
			return
		}
	}
}

// flushed returns nil once nothing is pending nor being written (or the
// pipe failed or closed), ctx's error when ctx ends first.
func (p *pipe) flushed(ctx context.Context) error {
	for {
		p.mu.Lock()
		if (p.pending == 0 && !p.writing) || p.err != nil || p.closed {
			p.mu.Unlock()
			return nil
		}
		if p.flushedq == nil {
			p.flushedq = make(chan struct{})
		}
		ch := p.flushedq
		p.mu.Unlock()
		select {
		case <-ch:
		case <-p.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// keep reports whether the flusher keeps buf for the next batch: a buffer
// over KeepWriteBuffer bytes is dropped once batches have used under a
// quarter of it for shrinkEvery (a burst is over). Called with p.mu held.
func (p *pipe) keep(buf []byte) bool {
	if cap(buf) <= KeepWriteBuffer {
		return true
	}
	now := time.Now()
	if len(buf) >= cap(buf)/4 {
		p.lastBigWrite = now
		return true
	}
	return now.Sub(p.lastBigWrite) < p.shrinkEvery
}

// Recv reads the next frame. Only one goroutine may call it at a time.
func (p *pipe) Recv() (*mangos.Message, error) {
	for {
		m, err := p.recv()
		if m != nil || err != nil {
			return m, err
		}
		// An oversized frame was discarded: read the next one.
	}
}

// recv reads one frame; nil, nil means an oversized frame was dropped.
func (p *pipe) recv() (*mangos.Message, error) {
	if n := p.br.Buffered(); n < 8 {
		if err := p.head(n); err != nil {
			return nil, err
		}
	}
	h, _ := p.br.Peek(8)
	sz := binary.BigEndian.Uint64(h)
	if sz > maxFrame || p.maxRecv > 0 && sz > uint64(p.maxRecv) {
		return p.oversize(sz)
	}
	_, _ = p.br.Discard(8)
	n := int(sz)
	if p.br.Buffered() >= n {
		// The whole frame is buffered: no wait, no deadline.
		m := newFrame(n)
		_, _ = p.br.Read(m.Body)
		p.framed()
		return m, nil
	}
	p.begin(sz)
	if n <= growStep || n-growStep <= p.br.Buffered() {
		// At most growStep bytes beyond those already buffered are
		// allocated on the length prefix's word (a 64 KiB body plus its
		// header is read in one piece, not grown and copied).
		m := newFrame(n)
		if err := p.fill(m.Body); err != nil {
			m.Free()
			return nil, err
		}
		p.framed()
		return m, nil
	}
	return p.recvGrowing(n)
}

// newFrame returns a message with an n-byte body to read a frame into:
// pooled up to PooledMax, else of its own.
func newFrame(n int) *mangos.Message {
	if n <= PooledMax {
		m := mangos.NewMessage(n)
		m.Body = m.Body[:n]
		return m
	}
	m := mangos.NewMessage(0)
	m.Body = make([]byte, n)
	return m
}

// head waits until a frame's 8-byte length prefix is buffered (n bytes
// are): first for any byte with no deadline (or the idle one), then, the
// frame having begun, for the rest within the frame deadline.
func (p *pipe) head(n int) error {
	if n == 0 {
		if p.resize != 0 {
			p.br = bufio.NewReaderSize(p.c, p.resize)
			p.resize = 0
		}
		if err := p.peek(1); err != nil {
			return err
		}
		p.adapt()
		if p.br.Buffered() >= 8 {
			return nil
		}
	}
	p.begin(0)
	return p.peek(8)
}

// peek waits until n bytes are buffered, under the read deadlines.
func (p *pipe) peek(n int) error {
	p.arm()
	for {
		_, err := p.br.Peek(n)
		if err == nil {
			return nil
		}
		if err = p.timedOut(err); err != nil {
			return err
		}
	}
}

// fill reads len(b) bytes into b, under the read deadlines.
func (p *pipe) fill(b []byte) error {
	p.arm()
	for len(b) > 0 {
		k, err := p.br.Read(b)
		b = b[k:]
		if err != nil {
			if err = p.timedOut(err); err != nil {
				return err
			}
		}
	}
	return nil
}

// begin notes that a frame (of claimed size sz, 0 while unknown) has begun
// and not fully arrived: from now on reads wait under its deadline.
func (p *pipe) begin(sz uint64) {
	if p.frameStart.IsZero() {
		p.frameStart = time.Now()
	}
	p.frameSize = sz
}

// framed notes that a frame was exchanged: the idle phase is over and no
// frame is in progress.
func (p *pipe) framed() {
	p.idle = false
	p.frameStart = time.Time{}
}

// frameEnd is when the frame in progress must have arrived (zero: never).
func (p *pipe) frameEnd() time.Time {
	if p.frameStart.IsZero() || p.lim.FrameTimeout < 0 {
		return time.Time{}
	}
	return p.frameStart.Add(p.lim.FrameTimeout + time.Duration(p.frameSize/MinFrameRate)*time.Second)
}

// want is the read deadline the pipe needs now (zero: none).
func (p *pipe) want() time.Time {
	w := p.frameEnd()
	if p.idle && (w.IsZero() || p.idleEnd.Before(w)) {
		w = p.idleEnd
	}
	return w
}

// arm sets the read deadline before a read that may block, lazily: a
// deadline already set that is earlier than needed stays (when it fires,
// timedOut moves it), and none is cleared here, so that frames that arrive
// whole cost no deadline system call at all.
func (p *pipe) arm() {
	w := p.want()
	if w.IsZero() || !p.armed.IsZero() && !p.armed.After(w) {
		return
	}
	p.setDeadline(w)
}

func (p *pipe) setDeadline(t time.Time) {
	_ = p.c.SetReadDeadline(t)
	p.armed = t
}

// timedOut decides what a read error means: a deadline that fired early
// (set for an earlier frame) is moved and nil returned, so the read goes
// on; a frame or idle deadline that passed closes the pipe and reports it;
// any other error is returned as is.
func (p *pipe) timedOut(err error) error {
	if !isTimeout(err) {
		return err
	}
	if p.idle {
		p.mu.Lock()
		sent := p.sent
		p.mu.Unlock()
		if sent {
			p.idle = false
		}
	}
	now := time.Now()
	switch {
	case p.idle && !now.Before(p.idleEnd):
		err = ErrIdleTimeout
	case !p.frameStart.IsZero() && !p.frameEnd().IsZero() && !now.Before(p.frameEnd()):
		err = fmt.Errorf("%w: %d of %d bytes in %v", ErrFrameTimeout,
			p.br.Buffered(), p.frameSize, now.Sub(p.frameStart).Round(time.Millisecond))
	default:
		p.setDeadline(p.want())
		return nil
	}
	p.obs.ConnTimeout(p.remote, err)
	p.Close()
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// oversize handles a length prefix over the receive limit: when the peer
// has a reply channel and the claim is within OversizeCeiling times the
// limit, the frame is read (its first OversizePrefix bytes kept, the rest
// discarded as it arrives) and the observer's replacement, if any, is
// returned; otherwise the pipe is closed. Nothing of the claimed size is
// ever allocated.
func (p *pipe) oversize(sz uint64) (*mangos.Message, error) {
	// (sz-1)/OversizeCeiling >= maxRecv is sz > OversizeCeiling*maxRecv
	// without overflow (sz/OversizeCeiling let 15 bytes more through).
	if p.maxRecv == 0 || (sz-1)/OversizeCeiling >= uint64(p.maxRecv) || !replies(p.peer) {
		if fr, ok := p.obs.(FrameRefuser); ok {
			fr.FrameRefused(p.remote, p.peer, sz)
		}
		p.Close()
		return nil, mangos.ErrTooLong
	}
	_, _ = p.br.Discard(8)
	p.begin(sz)
	prefix := make([]byte, min(sz, OversizePrefix))
	if err := p.fill(prefix); err != nil {
		return nil, err
	}
	for left := sz - uint64(len(prefix)); left > 0; {
		if p.br.Buffered() == 0 {
			if err := p.peek(1); err != nil {
				return nil, err
			}
		}
		k, _ := p.br.Discard(int(min(left, uint64(p.br.Buffered()))))
		left -= uint64(k)
	}
	p.framed()
	if b := p.obs.Oversize(p.remote, p.peer, prefix, sz); b != nil {
		m := mangos.NewMessage(len(b))
		m.Body = append(m.Body, b...)
		return m, nil
	}
	return nil, nil
}

// replies reports whether a peer of protocol proto has a reply channel: a
// refusal can travel back to whoever is waiting for the answer.
func replies(proto uint16) bool {
	switch proto {
	case mangos.ProtoReq, mangos.ProtoRep, mangos.ProtoSurveyor, mangos.ProtoRespondent:
		return true
	}
	return false
}

// adapt sizes the read buffer after a read system call filled it: a full
// buffer means more was waiting, so the next one is twice as large. It
// shrinks by half when reads have used little of it for a while (at most
// once per shrinkEvery, and not within shrinkEvery of a full read), so a
// busy pipe does not reallocate back and forth. The buffer is replaced only
// once it is empty, so no byte is lost or copied.
func (p *pipe) adapt() {
	n, size := p.br.Buffered(), p.br.Size()
	switch {
	case n == size:
		p.small = 0
		p.lastFull = time.Now()
		if size < ReadBuffer {
			p.resize = 2 * size
		}
	case n < size/8 && size > MinReadBuffer:
		if p.small++; p.small >= 64 {
			p.small = 0
			if now := time.Now(); now.Sub(p.lastFull) >= p.shrinkEvery && now.Sub(p.lastShrink) >= p.shrinkEvery {
				p.lastShrink = now
				p.resize = size / 2
			}
		}
	default:
		p.small = 0
	}
}

// recvGrowing reads an n-byte body (n over growStep plus what is
// buffered), allocating as the bytes arrive rather than trusting the
// length prefix: the buffer starts at growStep and doubles when full,
// capped at n, so what is held stays within twice what arrived (plus
// growStep).
func (p *pipe) recvGrowing(n int) (*mangos.Message, error) {
	body := make([]byte, 0, growStep)
	for len(body) < n {
		if len(body) == cap(body) {
			body = slices.Grow(body, min(n, 2*cap(body))-len(body))
		}
		if err := p.fill(body[len(body):min(n, cap(body))]); err != nil {
			return nil, err
		}
		body = body[:min(n, cap(body))]
	}
	p.framed()
	m := mangos.NewMessage(0)
	m.Body = body
	return m, nil
}

// Close writes what is buffered for at most CloseLinger, then closes the
// connection. It is idempotent and safe to call from any goroutine.
func (p *pipe) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.space.Broadcast()
		busy := p.writing || p.pending > 0
		p.mu.Unlock()
		if busy {
			_ = p.raw.SetWriteDeadline(time.Now().Add(CloseLinger))
		}
		select {
		case p.wake <- struct{}{}:
		default:
		}
		<-p.done
		p.raw.Close()
		p.mu.Lock()
		for i := range p.refs {
			p.refs[i].m.Free()
		}
		p.refs, p.buf, p.spare = nil, nil, nil
		p.mu.Unlock()
		if p.onClose != nil {
			p.onClose()
		}
	})
	return nil
}

// GetOption returns a pipe property.
func (p *pipe) GetOption(name string) (any, error) {
	switch name {
	case mangos.OptionMaxRecvSize:
		return p.maxRecv, nil
	case mangos.OptionLocalAddr:
		return p.raw.LocalAddr(), nil
	case mangos.OptionRemoteAddr:
		return p.raw.RemoteAddr(), nil
	case mangos.OptionNoDelay:
		return p.opts.noDelay, nil
	case mangos.OptionKeepAlive:
		return p.opts.keepAlive >= 0, nil
	case mangos.OptionKeepAliveTime:
		return p.opts.keepAlive, nil
	case OptionFlushed:
		return p.flushed, nil
	case mangos.OptionTLSConnState:
		if tc, ok := p.c.(*tls.Conn); ok {
			return tc.ConnectionState(), nil
		}
	}
	return nil, mangos.ErrBadOption
}
