package sptcp

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"go.nanomsg.org/mangos/v3"
)

const (
	// maxFrame caps a length prefix when no receive limit is set.
	maxFrame = 1 << 40
	// growStep is the size up to which a received body is allocated at
	// once without a receive limit; past it the body grows as bytes arrive.
	growStep = 1 << 20
)

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

	mu        sync.Mutex
	space     sync.Cond // Send waits here for the buffer to drain
	waiters   int
	buf       []byte // frames waiting for the flusher
	refs      []ref  // bodies to splice into buf when writing
	pending   int    // bytes in buf and refs
	spare     []byte
	spareRefs []ref
	writing   bool // the flusher is in a write
	closed    bool
	err       error // sticky write error

	wake      chan struct{} // capacity 1: there is something to write
	done      chan struct{} // closed when the flusher returns
	closeOnce sync.Once
}

// handshake exchanges SP headers on c (whose TCP connection is raw) and
// returns a running pipe, or closes c and returns an error.
func handshake(c, raw net.Conn, proto mangos.ProtocolInfo, s snapshot, deadline time.Time) (*pipe, error) {
	fail := func(err error) (*pipe, error) {
		raw.Close()
		return nil, err
	}
	if err := c.SetDeadline(deadline); err != nil {
		return fail(err)
	}
	hdr := [8]byte{0, 'S', 'P', 0, byte(proto.Self >> 8), byte(proto.Self), 0, 0}
	if _, err := c.Write(hdr[:]); err != nil {
		return fail(err)
	}
	br := bufio.NewReaderSize(c, MinReadBuffer)
	got, err := br.Peek(8)
	if err != nil {
		return fail(err)
	}
	switch {
	case got[0] != 0 || got[1] != 'S' || got[2] != 'P' || got[6] != 0 || got[7] != 0:
		return fail(mangos.ErrBadHeader)
	case got[3] != 0:
		return fail(mangos.ErrBadVersion)
	case binary.BigEndian.Uint16(got[4:]) != proto.Peer:
		return fail(mangos.ErrBadProto)
	}
	_, _ = br.Discard(8)
	if err := c.SetDeadline(time.Time{}); err != nil {
		return fail(err)
	}
	p := &pipe{
		c: c, raw: raw, br: br, maxRecv: s.maxRecv, opts: s, shrinkEvery: time.Second,
		buf:  make([]byte, 0, 4096),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
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
	p.pending += 8 + hl + bl
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
			buf, refs := p.buf, p.refs
			p.buf, p.refs = p.spare[:0], p.spareRefs[:0]
			p.spare, p.spareRefs = nil, nil
			p.pending = 0
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
		p.mu.Unlock()
		if closing {
			return
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
	empty := p.br.Buffered() == 0
	if empty && p.resize != 0 {
		p.br = bufio.NewReaderSize(p.c, p.resize)
		p.resize = 0
	}
	h, err := p.br.Peek(8)
	if err != nil {
		return nil, err
	}
	if empty {
		p.adapt()
	}
	sz := binary.BigEndian.Uint64(h)
	_, _ = p.br.Discard(8)
	if sz > maxFrame || p.maxRecv > 0 && sz > uint64(p.maxRecv) {
		p.Close()
		return nil, mangos.ErrTooLong
	}
	n := int(sz)
	if p.maxRecv == 0 && n > growStep {
		return p.recvGrowing(n)
	}
	m := mangos.NewMessage(n)
	m.Body = m.Body[:n]
	if _, err := io.ReadFull(p.br, m.Body); err != nil {
		m.Free()
		return nil, err
	}
	return m, nil
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

// recvGrowing reads an n-byte body without a receive limit, allocating as
// the bytes arrive rather than trusting the length prefix.
func (p *pipe) recvGrowing(n int) (*mangos.Message, error) {
	body := make([]byte, 0, growStep)
	for len(body) < n {
		if len(body) == cap(body) {
			body = slices.Grow(body, min(n, 2*cap(body))-len(body))
		}
		k, err := io.ReadFull(p.br, body[len(body):min(n, cap(body))])
		body = body[:len(body)+k]
		if err != nil {
			return nil, err
		}
	}
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
	case mangos.OptionTLSConnState:
		if tc, ok := p.c.(*tls.Conn); ok {
			return tc.ConnectionState(), nil
		}
	}
	return nil, mangos.ErrBadOption
}
