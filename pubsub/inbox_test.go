package pubsub

import (
	"testing"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
	"go.nanomsg.org/mangos/v3"
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
	b.SetBytes(n * 256)
	b.ReportAllocs()
	for b.Loop() {
		m := mangos.NewMessage(len(frame))
		m.Body = append(m.Body, frame...)
		msgs, err := d.decode(s, m)
		if err != nil || len(msgs) != n {
			b.Fatalf("got %d messages (%v), want %d", len(msgs), err, n)
		}
		s.track(msgs)
		// Every batch continues the last: no gap.
		*s.last[topicKey{7, "bench"}] = 0
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
}
