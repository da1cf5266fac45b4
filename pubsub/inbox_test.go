package pubsub

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
	"unsafe"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
)

// benchFrame is a batch frame of n entries of size bytes on topic "bench".
func benchFrame(n, size int) []byte {
	b := wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindBatch, Topic: "bench", Pub: 7, Seq: 1, Time: 1})
	content := append(wire.AppendEntryHead(nil, nil), make([]byte, size)...)
	for range n {
		b = wire.AppendEntry(b, content)
	}
	return b
}

// BenchmarkReceiveBatch is the subscriber's per-frame work (decode, filter,
// gap count) for batches of 256 B messages, per message.
func BenchmarkReceiveBatch(b *testing.B) {
	so, err := sock.Open(sock.Sub, sock.DefaultSettings(), sock.Wiring{})
	if err != nil {
		b.Fatal(err)
	}
	defer so.Close()
	s := &Subscriber{so: so, codec: spmesh.Raw, last: map[topicKey]*uint64{}, pubs: map[uint64]*PublisherStats{}}
	pat, _ := parsePattern("bench")
	s.subs.Store(&[]pattern{pat})
	const n = 30
	frame := benchFrame(n, 256)
	var d frameDecoder
	got := 0
	emit := func(*Message) bool { got++; return true }
	b.SetBytes(n * 256)
	b.ReportAllocs()
	for b.Loop() {
		m := sock.NewFrame(len(frame))
		m.Body = append(m.Body, frame...)
		got = 0
		if err := d.decode(s, m, emit); err != nil || got != n {
			b.Fatalf("got %d messages (%v), want %d", got, err, n)
		}
		// Every batch continues the last: no gap.
		*s.last[topicKey{7, "bench"}] = 0
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
}

func testSubscriber(t testing.TB) *Subscriber {
	so, err := sock.Open(sock.Sub, sock.DefaultSettings(), sock.Wiring{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { so.Close() })
	s := &Subscriber{so: so, codec: spmesh.Raw, last: map[topicKey]*uint64{}, pubs: map[uint64]*PublisherStats{}}
	pat, _ := parsePattern(">")
	s.subs.Store(&[]pattern{pat})
	return s
}

func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHostileBatchBounded: a batch of 2.8 M empty entries is one decode
// error and delivers nothing; a batch of 2.8 M minimal entries makes its
// messages a chunk at a time, so a subscriber whose queue stops taking
// them allocates a chunk, not 2.8 M messages.
func TestHostileBatchBounded(t *testing.T) {
	s := testSubscriber(t)
	head := wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindBatch, Topic: "t", Pub: 9, Seq: 1})
	const n = 2800000
	empty := append(append([]byte(nil), head...), bytes.Repeat([]byte{0xc4, 0}, n)...)
	minimal := append(append([]byte(nil), head...), bytes.Repeat([]byte{0xc4, 1, 0x80}, n)...)
	var d frameDecoder
	got := 0
	var err error
	alloc := allocatedBy(func() {
		err = d.decode(s, &sock.Frame{Body: empty}, func(*Message) bool { got++; return true })
	})
	if !errors.Is(err, spmesh.ErrDecode) || got != 0 {
		t.Fatalf("empty entries: got %d messages, %v; want none and ErrDecode", got, err)
	}
	t.Logf("%d empty entries (%d bytes): %d bytes allocated", n, len(empty), alloc)
	if alloc > 64<<10 {
		t.Errorf("empty entries: allocated %d bytes, want < 64 KiB", alloc)
	}
	const queue = 1000 // the queue takes this many, then the inbox closes
	got = 0
	dropped, closed := s.so.C.Dropped.Load(), s.so.C.DroppedClosed.Load()
	alloc = allocatedBy(func() {
		err = d.decode(s, &sock.Frame{Body: minimal}, func(*Message) bool { got++; return got <= queue })
	})
	if err != nil || got != queue+1 {
		t.Fatalf("minimal entries: got %d emitted, %v; want %d, nil", got, err, queue+1)
	}
	if d := s.so.C.Dropped.Load() - dropped; d != n-queue-1 {
		t.Errorf("minimal entries: %d counted as dropped, want %d", d, n-queue-1)
	}
	if d := s.so.C.DroppedClosed.Load() - closed; d != n-queue-1 {
		t.Errorf("minimal entries: %d counted as dropped (closed), want %d", d, n-queue-1)
	}
	t.Logf("%d minimal entries (%d bytes), queue stops at %d: %d bytes allocated", n, len(minimal), queue, alloc)
	if max := uint64((queue + 2*batchChunk) * int(unsafe.Sizeof(Message{}))); alloc > max+64<<10 {
		t.Errorf("minimal entries: allocated %d bytes, want at most %d", alloc, max)
	}
}

// TestDropRestCounted: messages a closed publisher could not send are
// counted in Dropped and DroppedClosed (tail frames are no messages).
func TestDropRestCounted(t *testing.T) {
	p, err := NewPublisher()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.dropRest([]entry{{}, {ctl: true}, {}}, 3)
	if st := p.Stats(); st.Dropped != 2 || st.DroppedClosed != 2 {
		t.Fatalf("got %d dropped (%d closed), want 2 (2)", st.Dropped, st.DroppedClosed)
	}
}
