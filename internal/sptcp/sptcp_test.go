package sptcp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/pair"
	"go.nanomsg.org/mangos/v3/transport"
	_ "go.nanomsg.org/mangos/v3/transport/tcp"
	"go.uber.org/goleak"

	"github.com/spmesh/spmesh/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 10 * time.Second

// --- helpers -------------------------------------------------------------

func pairSocket(t *testing.T) mangos.Socket {
	t.Helper()
	s, err := pair.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// tlistener is a transport-level listener on 127.0.0.1:0 speaking PAIR.
func tlistener(t *testing.T, opts map[string]any) transport.Listener {
	t.Helper()
	l, err := Transport.NewListener(Scheme+"://127.0.0.1:0", pairSocket(t))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range opts {
		if err := l.SetOption(k, v); err != nil {
			t.Fatalf("set %s: got %v, want nil", k, err)
		}
	}
	if err := l.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func hostPort(addr string) string { return addr[strings.Index(addr, "://")+3:] }

// accept waits for the listener's next pipe.
func accept(t *testing.T, l transport.Listener) transport.Pipe {
	t.Helper()
	type res struct {
		p   transport.Pipe
		err error
	}
	ch := make(chan res, 1)
	go func() {
		p, err := l.Accept()
		ch <- res{p, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("accept: got %v, want nil", r.err)
		}
		t.Cleanup(func() { r.p.Close() })
		return r.p
	case <-time.After(wait):
		l.Close()
		<-ch
		t.Fatal("accept: no pipe within the deadline")
	}
	return nil
}

// pipes returns a connected pair of transport pipes (listener side, dialer side).
func pipes(t *testing.T) (transport.Pipe, transport.Pipe) {
	t.Helper()
	l := tlistener(t, nil)
	d, err := Transport.NewDialer(l.Address(), pairSocket(t))
	if err != nil {
		t.Fatal(err)
	}
	dp, err := d.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	return accept(t, l), dp
}

// rawDial connects to l without a handshake.
func rawDial(t *testing.T, l transport.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", hostPort(l.Address()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func spHeader(proto uint16) []byte {
	return []byte{0, 'S', 'P', 0, byte(proto >> 8), byte(proto), 0, 0}
}

func frame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(len(body))), body...)
}

// readHeader reads and checks the 8-byte SP header a pipe sends first.
func readHeader(t *testing.T, c net.Conn) {
	t.Helper()
	var h [8]byte
	c.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.ReadFull(c, h[:]); err != nil {
		t.Fatalf("read SP header: got %v, want nil", err)
	}
	if want := spHeader(mangos.ProtoPair); !bytes.Equal(h[:], want) {
		t.Fatalf("SP header: got % x, want % x", h, want)
	}
}

// expectClosed waits until the peer closes c.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read after close: got %v, want EOF or reset", err)
	}
}

func msg(b []byte) *mangos.Message {
	m := mangos.NewMessage(len(b))
	m.Body = append(m.Body, b...)
	return m
}

func payload(seq, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seq + i)
	}
	if n >= 8 {
		binary.BigEndian.PutUint64(b, uint64(seq))
	}
	return b
}

func recvBody(t *testing.T, p transport.Pipe) []byte {
	t.Helper()
	m, err := p.Recv()
	if err != nil {
		t.Fatalf("recv: got %v, want nil", err)
	}
	b := append([]byte(nil), m.Body...)
	m.Free()
	return b
}

// --- the transport against itself ------------------------------------------

func TestRoundTripSizes(t *testing.T) {
	lp, dp := pipes(t)
	sizes := []int{0, 1, 8, 255, 4096, RefThreshold - 1, RefThreshold, 200_000, 1 << 20,
		growStep - 1, growStep, growStep + 1, growStep + 51, growStep + 51, 2*growStep - 8, 2 * growStep, 2*growStep + 1, 100}
	go func() {
		for i, n := range sizes {
			if err := dp.Send(msg(payload(i, n))); err != nil {
				return
			}
		}
	}()
	for i, n := range sizes {
		if got, want := recvBody(t, lp), payload(i, n); !bytes.Equal(got, want) {
			t.Fatalf("message %d: got %d bytes, want %d bytes of the pattern", i, len(got), n)
		}
	}
}

func TestHeaderGoesFirst(t *testing.T) {
	lp, dp := pipes(t)
	m := mangos.NewMessage(8)
	m.Header = append(m.Header, 0x80, 0, 0, 1)
	m.Body = append(m.Body, "body"...)
	if err := dp.Send(m); err != nil {
		t.Fatal(err)
	}
	if got, want := string(recvBody(t, lp)), "\x80\x00\x00\x01body"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestManyConcurrentSenders(t *testing.T) {
	lp, dp := pipes(t)
	const senders, each = 8, 1500
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				n := 16 + (i % 5 * 300)
				if i%500 == 0 {
					n = RefThreshold + 10 // by reference, interleaved with copies
				}
				b := payload(i, n)
				b[8] = byte(s)
				if err := dp.Send(msg(b)); err != nil {
					t.Errorf("send: got %v, want nil", err)
					return
				}
			}
		}()
	}
	next := make([]int, senders)
	for range senders * each {
		b := recvBody(t, lp)
		s, seq := int(b[8]), int(binary.BigEndian.Uint64(b))
		if seq != next[s] {
			t.Fatalf("sender %d: got seq %d, want %d", s, seq, next[s])
		}
		want := payload(seq, len(b))
		want[8] = byte(s)
		if !bytes.Equal(b, want) {
			t.Fatalf("sender %d seq %d: corrupted body", s, seq)
		}
		next[s]++
	}
	wg.Wait()
}

func TestSendAfterClose(t *testing.T) {
	_, dp := pipes(t)
	dp.Close()
	dp.Close()
	if err := dp.Send(msg([]byte("x"))); !errors.Is(err, mangos.ErrClosed) {
		t.Fatalf("send after close: got %v, want %v", err, mangos.ErrClosed)
	}
}

func TestPeerCloseEndsRecv(t *testing.T) {
	lp, dp := pipes(t)
	if err := dp.Send(msg([]byte("last"))); err != nil {
		t.Fatal(err)
	}
	dp.Close() // flushes "last" first
	if got := string(recvBody(t, lp)); got != "last" {
		t.Fatalf("got %q, want %q", got, "last")
	}
	if _, err := lp.Recv(); err == nil {
		t.Fatal("recv after peer close: got nil error, want one")
	}
}

// A peer that stops reading: Send blocks at the high-water mark, and Close
// still returns promptly and unblocks it.
func TestCloseUnblocksStuckSend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write(spHeader(mangos.ProtoPair)) // then never read
		t.Cleanup(func() { c.Close() })
	}()
	d, err := Transport.NewDialer(Scheme+"://"+ln.Addr().String(), pairSocket(t))
	if err != nil {
		t.Fatal(err)
	}
	tp, err := d.Dial()
	if err != nil {
		t.Fatal(err)
	}
	p := tp.(*pipe)
	sent := make(chan error, 1)
	go func() {
		for {
			if err := p.Send(msg(make([]byte, 4096))); err != nil {
				sent <- err
				return
			}
		}
	}()
	testutil.Eventually(t, wait, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.waiters == 0 {
			return fmt.Errorf("got no blocked Send, want one (pending %d)", p.pending)
		}
		return nil
	})
	start := time.Now()
	p.Close()
	if took := time.Since(start); took > CloseLinger+2*time.Second {
		t.Fatalf("close took %v, want about %v", took, CloseLinger)
	}
	if err := <-sent; !errors.Is(err, mangos.ErrClosed) {
		t.Fatalf("blocked send: got %v, want %v", err, mangos.ErrClosed)
	}
}

// --- hostile and odd peers -------------------------------------------------

func TestPartialWritesFromPeer(t *testing.T) {
	l := tlistener(t, nil)
	c := rawDial(t, l)
	var stream []byte
	stream = append(stream, spHeader(mangos.ProtoPair)...)
	const count = 200
	for i := range count {
		stream = append(stream, frame(payload(i, i*7%300))...)
	}
	go func() {
		// Dribble the bytes in chunks of 1 to 13 bytes.
		for i, k := 0, 1; i < len(stream); k = k%13 + 1 {
			j := min(len(stream), i+k)
			if _, err := c.Write(stream[i:j]); err != nil {
				return
			}
			i = j
		}
	}()
	p := accept(t, l)
	for i := range count {
		if got, want := recvBody(t, p), payload(i, i*7%300); !bytes.Equal(got, want) {
			t.Fatalf("message %d: got % x, want % x", i, got, want)
		}
	}
}

func TestPartialReadsByPeer(t *testing.T) {
	l := tlistener(t, nil)
	c := rawDial(t, l)
	c.(*net.TCPConn).SetReadBuffer(32 << 10)
	c.Write(spHeader(mangos.ProtoPair))
	p := accept(t, l)
	readHeader(t, c)
	const count = 3000
	go func() {
		for i := range count {
			if p.Send(msg(payload(i, i%1000))) != nil {
				return
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(wait))
	r := &smallReader{c: c}
	for i := range count {
		var lb [8]byte
		if _, err := io.ReadFull(r, lb[:]); err != nil {
			t.Fatalf("message %d length: got %v, want nil", i, err)
		}
		body := make([]byte, binary.BigEndian.Uint64(lb[:]))
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatalf("message %d body: got %v, want nil", i, err)
		}
		if want := payload(i, i%1000); !bytes.Equal(body, want) {
			t.Fatalf("message %d: got %d bytes, want %d", i, len(body), len(want))
		}
	}
}

// smallReader reads at most 1 to 97 bytes at a time.
type smallReader struct {
	c net.Conn
	k int
}

func (r *smallReader) Read(b []byte) (int, error) {
	r.k = r.k%97 + 1
	return r.c.Read(b[:min(len(b), r.k)])
}

func TestPeerClosesMidFrame(t *testing.T) {
	cases := map[string][]byte{
		"mid length": frame(make([]byte, 100))[:4],
		"mid body":   frame(make([]byte, 100))[:58],
	}
	for name, partial := range cases {
		t.Run(name, func(t *testing.T) {
			l := tlistener(t, nil)
			c := rawDial(t, l)
			c.Write(append(spHeader(mangos.ProtoPair), partial...))
			p := accept(t, l)
			c.Close()
			if m, err := p.Recv(); err == nil {
				t.Fatalf("recv: got a %d-byte message, want an error", len(m.Body))
			}
		})
	}
}

func TestOversizedLengthPrefix(t *testing.T) {
	for _, claim := range []uint64{1025, 1 << 40, 1 << 62, 1<<64 - 1} {
		t.Run(fmt.Sprint(claim), func(t *testing.T) {
			l := tlistener(t, map[string]any{mangos.OptionMaxRecvSize: 1024})
			c := rawDial(t, l)
			b := append(spHeader(mangos.ProtoPair), frame(make([]byte, 1024))...) // at the limit: fine
			b = binary.BigEndian.AppendUint64(b, claim)
			c.Write(append(b, "short"...))
			p := accept(t, l)
			if got := recvBody(t, p); len(got) != 1024 {
				t.Fatalf("at the limit: got %d bytes, want 1024", len(got))
			}
			if _, err := p.Recv(); !errors.Is(err, mangos.ErrTooLong) {
				t.Fatalf("oversized: got %v, want %v", err, mangos.ErrTooLong)
			}
			readHeader(t, c)
			expectClosed(t, c)
		})
	}
}

// Without a receive limit, a huge claim allocates only what arrives.
func TestUnlimitedClaimDoesNotAllocate(t *testing.T) {
	l := tlistener(t, nil)
	c := rawDial(t, l)
	b := binary.BigEndian.AppendUint64(spHeader(mangos.ProtoPair), 1<<39)
	c.Write(append(b, make([]byte, 100)...))
	p := accept(t, l)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	done := make(chan error, 1)
	go func() {
		_, err := p.Recv()
		done <- err
	}()
	c.Close()
	if err := <-done; err == nil {
		t.Fatal("recv: got nil error, want one")
	}
	runtime.ReadMemStats(&after)
	if grew := int64(after.TotalAlloc - before.TotalAlloc); grew > 16<<20 {
		t.Fatalf("allocated %d bytes for a 100-byte partial frame, want < 16 MiB", grew)
	}
	// Past maxFrame the claim is refused outright.
	l2 := tlistener(t, nil)
	c2 := rawDial(t, l2)
	c2.Write(binary.BigEndian.AppendUint64(spHeader(mangos.ProtoPair), 1<<63))
	if _, err := accept(t, l2).Recv(); !errors.Is(err, mangos.ErrTooLong) {
		t.Fatalf("got %v, want %v", err, mangos.ErrTooLong)
	}
}

func TestGarbageHandshake(t *testing.T) {
	cases := map[string][]byte{
		"http":        []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"bad magic":   {0, 'S', 'Q', 0, 0, 0x10, 0, 0},
		"version":     {0, 'S', 'P', 1, 0, 0x10, 0, 0},
		"wrong proto": spHeader(mangos.ProtoPub),
		"reserved":    {0, 'S', 'P', 0, 0, 0x10, 0, 1},
	}
	l := tlistener(t, nil)
	for name, hdr := range cases {
		t.Run(name, func(t *testing.T) {
			c := rawDial(t, l)
			c.Write(hdr)
			readHeader(t, c)
			expectClosed(t, c)
		})
	}
	// The listener still serves a well-behaved peer afterwards.
	c := rawDial(t, l)
	c.Write(append(spHeader(mangos.ProtoPair), frame([]byte("ok"))...))
	if got := string(recvBody(t, accept(t, l))); got != "ok" {
		t.Fatalf("got %q, want %q", got, "ok")
	}
}

// Frames sent in the same write as the handshake are not lost, on either side.
func TestFramesInterleavedWithHandshake(t *testing.T) {
	t.Run("listener", func(t *testing.T) {
		l := tlistener(t, nil)
		c := rawDial(t, l)
		b := spHeader(mangos.ProtoPair)
		for i := range 3 {
			b = append(b, frame(payload(i, 20))...)
		}
		c.Write(b) // before reading the listener's header
		p := accept(t, l)
		for i := range 3 {
			if got := recvBody(t, p); !bytes.Equal(got, payload(i, 20)) {
				t.Fatalf("message %d: got % x", i, got)
			}
		}
	})
	t.Run("dialer", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			c.Write(append(spHeader(mangos.ProtoPair), frame([]byte("early"))...))
		}()
		d, err := Transport.NewDialer(Scheme+"://"+ln.Addr().String(), pairSocket(t))
		if err != nil {
			t.Fatal(err)
		}
		p, err := d.Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if got := string(recvBody(t, p)); got != "early" {
			t.Fatalf("got %q, want %q", got, "early")
		}
	})
}

// A peer that never completes the handshake holds up nobody, and closing the
// listener drops it at once.
func TestSilentPeer(t *testing.T) {
	l := tlistener(t, nil)
	silent := rawDial(t, l)
	c := rawDial(t, l)
	c.Write(append(spHeader(mangos.ProtoPair), frame([]byte("ok"))...))
	if got := string(recvBody(t, accept(t, l))); got != "ok" {
		t.Fatalf("got %q, want %q", got, "ok")
	}
	readHeader(t, silent)
	start := time.Now()
	l.Close() // closes the pending handshake too
	expectClosed(t, silent)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("closing with a silent peer took %v, want it prompt", took)
	}
}

func TestAddresses(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://1.2.3.4:5":       "sptcp://1.2.3.4:5",
		"tls+tcp://h:1":         "sptls+tcp://h:1",
		"inproc://x":            "inproc://x",
		"sptcp://already:1":     "sptcp://already:1",
		"ws://127.0.0.1:1/path": "ws://127.0.0.1:1/path",
	} {
		if got := Addr(in); got != want {
			t.Errorf("Addr(%q): got %q, want %q", in, got, want)
		}
		if in != want {
			if got := PublicAddr(want); got != in {
				t.Errorf("PublicAddr(%q): got %q, want %q", want, got, in)
			}
		}
	}
	s := pairSocket(t)
	if _, err := Transport.NewDialer("tcp://127.0.0.1:1", s); !errors.Is(err, mangos.ErrBadTran) {
		t.Errorf("wrong scheme: got %v, want %v", err, mangos.ErrBadTran)
	}
	if _, err := Transport.NewListener("sptcp://no-port", s); !errors.Is(err, mangos.ErrBadAddr) {
		t.Errorf("bad address: got %v, want %v", err, mangos.ErrBadAddr)
	}
	l := tlistener(t, nil)
	l2, err := Transport.NewListener(l.Address(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if err := l2.Listen(); !errors.Is(err, mangos.ErrAddrInUse) {
		t.Errorf("address in use: got %v, want %v", err, mangos.ErrAddrInUse)
	}
	if l3, err := Transport.NewListener(Scheme+"://*:0", s); err != nil {
		t.Errorf("wildcard host: got %v, want nil", err)
	} else {
		l3.Close()
	}
}

func TestOptions(t *testing.T) {
	s := pairSocket(t)
	d, err := Transport.NewDialer(Scheme+"://127.0.0.1:1", s)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		v    any
		want error
	}{
		{mangos.OptionMaxRecvSize, 100, nil},
		{mangos.OptionMaxRecvSize, -1, mangos.ErrBadValue},
		{mangos.OptionMaxRecvSize, "x", mangos.ErrBadValue},
		{mangos.OptionNoDelay, false, nil},
		{mangos.OptionNoDelay, 1, mangos.ErrBadValue},
		{mangos.OptionKeepAlive, false, nil},
		{mangos.OptionKeepAlive, "x", mangos.ErrBadValue},
		{mangos.OptionKeepAliveTime, time.Second, nil},
		{mangos.OptionKeepAliveTime, 1, mangos.ErrBadValue},
		{mangos.OptionTLSConfig, nil, mangos.ErrBadOption},
		{"NO-SUCH-OPTION", 1, mangos.ErrBadOption},
	} {
		if err := d.SetOption(c.name, c.v); err != c.want {
			t.Errorf("SetOption(%s, %v): got %v, want %v", c.name, c.v, err, c.want)
		}
	}
	for name, want := range map[string]any{
		mangos.OptionMaxRecvSize:   100,
		mangos.OptionNoDelay:       false,
		mangos.OptionKeepAlive:     true,
		mangos.OptionKeepAliveTime: time.Second,
	} {
		if got, err := d.GetOption(name); err != nil || got != want {
			t.Errorf("GetOption(%s): got %v, %v, want %v", name, got, err, want)
		}
	}
	if _, err := d.GetOption("NO-SUCH-OPTION"); err != mangos.ErrBadOption {
		t.Errorf("unknown option: got %v, want %v", err, mangos.ErrBadOption)
	}

	l := tlistener(t, map[string]any{mangos.OptionNoDelay: false, mangos.OptionKeepAlive: false, mangos.OptionMaxRecvSize: 77})
	d2, _ := Transport.NewDialer(l.Address(), s)
	dp, err := d2.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	p := accept(t, l)
	for name, want := range map[string]any{
		mangos.OptionNoDelay:     false,
		mangos.OptionKeepAlive:   false,
		mangos.OptionMaxRecvSize: 77,
	} {
		if got, err := p.GetOption(name); err != nil || got != want {
			t.Errorf("pipe GetOption(%s): got %v, %v, want %v", name, got, err, want)
		}
	}
	if a, err := p.GetOption(mangos.OptionRemoteAddr); err != nil || a.(net.Addr).String() == "" {
		t.Errorf("remote address: got %v, %v", a, err)
	}
	if _, err := p.GetOption(mangos.OptionTLSConnState); err != mangos.ErrBadOption {
		t.Errorf("TLS state on plain TCP: got %v, want %v", err, mangos.ErrBadOption)
	}
}

// Buffers grow for a burst and shrink back once the pipe goes quiet.
func TestBuffersAdapt(t *testing.T) {
	lp, dp := pipes(t)
	l, d := lp.(*pipe), dp.(*pipe)
	for _, p := range []*pipe{l, d} { // no waiting between halvings here
		p.mu.Lock()
		p.shrinkEvery = 0
		p.mu.Unlock()
	}
	readSize := func() int {
		if l.resize != 0 {
			return l.resize
		}
		return l.br.Size()
	}
	if got := readSize(); got != MinReadBuffer {
		t.Fatalf("read buffer at start: got %d, want %d", got, MinReadBuffer)
	}
	// A burst queued before the reader starts: every read fills the buffer.
	const burst = 30000
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := range burst {
			if dp.Send(msg(payload(i, 200))) != nil {
				return
			}
		}
	}()
	testutil.Eventually(t, wait, func() error {
		select {
		case <-sent:
			return nil
		default:
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.waiters == 0 {
			return fmt.Errorf("sender neither done nor blocked (pending %d)", d.pending)
		}
		return nil
	})
	for range burst {
		recvBody(t, lp)
	}
	if got := readSize(); got != ReadBuffer {
		t.Fatalf("read buffer after a burst: got %d, want %d", got, ReadBuffer)
	}
	// Quiet: lone messages, each read far from filling the buffer.
	for i := range 300 {
		if err := dp.Send(msg(payload(i, 100))); err != nil {
			t.Fatal(err)
		}
		recvBody(t, lp)
	}
	if got := readSize(); got != MinReadBuffer {
		t.Fatalf("read buffer after quiet: got %d, want %d", got, MinReadBuffer)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if cap(d.buf) > KeepWriteBuffer || cap(d.spare) > KeepWriteBuffer {
		t.Fatalf("write buffers after quiet: got cap %d and %d, want <= %d", cap(d.buf), cap(d.spare), KeepWriteBuffer)
	}
}

// The flusher gives way before a write only where more frames are likely:
// a lone message on a quiet pipe is written at once, except for a probe
// every maxProbeGap wake-ups; contention or a paying give-way make it give
// way every time.
func TestGiveWayPolicy(t *testing.T) {
	var g giveWay
	yields := 0
	const lone = 6400
	for range lone {
		if g.want() {
			yields++
			g.gave(false)
		}
	}
	// Probes at wake-ups 1, 3, 6, 11, 20, 37, 70, then every 65th.
	if limit := lone/maxProbeGap + 8; yields > limit {
		t.Fatalf("%d give-ways for %d lone messages, want at most %d", yields, lone, limit)
	}

	g.contended = true
	if !g.want() {
		t.Fatal("no give-way although a Send queued behind a waiting frame")
	}
	g.contended = false
	g.gave(true)
	for i := range 3 {
		if !g.want() {
			t.Fatalf("wake-up %d: no give-way although the last one gained frames", i)
		}
		g.gave(true)
	}
	g.gave(false)
	if g.want() {
		t.Fatal("gave way on the wake-up after one that gained nothing")
	}
	if !g.want() {
		t.Fatal("the probe gap did not restart from 1 after paying give-ways")
	}
}
