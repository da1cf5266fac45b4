package wire

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/spmesh/spmesh"
)

// allocated reports the bytes f allocates: the least of three runs, because
// MemStats counts the whole process and the runtime or the test framework
// sometimes allocates a few KiB of its own during one run. f must be
// repeatable.
func allocated(f func()) uint64 {
	least := ^uint64(0)
	for range 3 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

// headerFrame is a request frame whose user header map claims n pairs,
// followed by pairs.
func headerFrame(n int, pairs []byte) []byte {
	f := []byte{1, byte(KindRequest), 0x81, keyHeaders, 0xdf, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	return append(f, pairs...)
}

func TestHeaderClaimsBoundedByFrame(t *testing.T) {
	const size = 8 << 20
	const pairs = (size - 9) / 2
	// 4 Mi pairs of empty strings (every key the same): valid, one header.
	dup := headerFrame(pairs, bytes.Repeat([]byte{0xa0, 0xa0}, pairs))
	// Distinct keys: 3 bytes per pair while 1-byte keys last, then 4.
	var distinct []byte
	n := 0
	for i := 0; len(distinct) < size-16; i++ {
		k := []byte{byte(i >> 16), byte(i >> 8), byte(i)}
		switch {
		case i < 1<<8:
			k = k[2:]
		case i < 1<<16:
			k = k[1:]
		}
		distinct = append(append(append(distinct, 0xa0|byte(len(k))), k...), 0xa0)
		n++
	}
	distinctFrame := headerFrame(n, distinct)
	cases := []struct {
		name  string
		frame []byte
		ok    bool
		limit float64 // allocated bytes per frame byte
	}{
		{"4 Mi duplicate pairs", dup, false, 0.01},
		{"distinct pairs filling 8 MiB", distinctFrame, false, 0.01},
		{"MaxHeaders distinct pairs", headerFrame(MaxHeaders, distinct[:4*MaxHeaders-256]), true, 64},
		{"claim of 4 Mi pairs, 1 KiB of pairs", headerFrame(pairs, dup[9:9+1024]), false, 4},
		{"claim of 2^32-1 pairs", headerFrame(1<<32-1, dup[9:]), false, 0.01},
		{"4 Mi pairs, last one not a str", append(headerFrame(pairs, dup[9:len(dup)-1]), 0xc0), false, 0.01},
	}
	for _, c := range cases {
		var m Msg
		var err error
		got := allocated(func() { err = Decode(c.frame, &m) })
		if (err == nil) != c.ok || err != nil && !errors.Is(err, spmesh.ErrDecode) {
			t.Errorf("%s: got %v, want ok=%v (or ErrDecode)", c.name, err, c.ok)
		}
		ratio := float64(got) / float64(len(c.frame))
		t.Logf("%-40s %8d bytes, %7d headers -> %10d allocated (%.3fx)", c.name, len(c.frame), len(m.Header), got, ratio)
		if ratio > c.limit && got > 64<<10 {
			t.Errorf("%s: allocated %.2fx the frame, want at most %.2fx", c.name, ratio, c.limit)
		}
	}
}

func TestFieldCountBoundedByFrame(t *testing.T) {
	// 5 bytes left cannot hold 3 pairs.
	frame := []byte{1, byte(KindRequest), 0x83, 2, 1, 6, 1, 0}
	var m Msg
	if err := Decode(frame, &m); !errors.Is(err, spmesh.ErrDecode) {
		t.Fatalf("got %v, want ErrDecode", err)
	}
}

func TestBatchEntriesChecked(t *testing.T) {
	head := AppendHeader(nil, &Msg{Kind: KindBatch, Topic: "t", Seq: 1})
	good := AppendEntry(nil, []byte{0x80, 'x'})
	// 2.8 M empty entries in 5.6 MiB: rejected without allocating.
	empties := append(append([]byte(nil), head...), bytes.Repeat([]byte{0xc4, 0}, 2800000)...)
	for name, frame := range map[string][]byte{
		"2.8 M empty entries":      empties,
		"good, then empty":         append(append(append([]byte(nil), head...), good...), 0xc4, 0),
		"good, then bad header":    append(append(append([]byte(nil), head...), good...), 0xc4, 3, 0x81, 1, 0xc0),
		"good, then huge headers":  append(append(append([]byte(nil), head...), good...), 0xc4, 7, 0x81, 3, 0xdf, 0, 0x10, 0, 0),
		"good, then a 2^32 header": append(append(append([]byte(nil), head...), good...), 0xc4, 8, 0x81, 3, 0x81, 0xdb, 0xff, 0xff, 0xff, 0xff),
	} {
		var b Msg
		if err := Decode(frame, &b); err != nil {
			t.Fatalf("%s: batch header: %v", name, err)
		}
		e := NewEntries(&b)
		var err error
		got := allocated(func() { _, err = e.Count() })
		if !errors.Is(err, spmesh.ErrDecode) {
			t.Errorf("%s: Count got %v, want ErrDecode", name, err)
		}
		if got > 4<<10 {
			t.Errorf("%s: Count allocated %d bytes, want (almost) none", name, got)
		}
	}
}

func TestCountAllocs(t *testing.T) {
	var cs [][]byte
	for i := range 50 {
		h := spmesh.Header(nil)
		if i%2 == 0 {
			h = spmesh.Header{"trace": "abc", "k": "v"}
		}
		cs = append(cs, content(h, "body"))
	}
	frame := batchOf(&Msg{Topic: "bench", Seq: 1}, cs...)
	var b Msg
	if err := Decode(frame, &b); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		e := NewEntries(&b)
		if n, err := e.Count(); err != nil || n != 50 {
			t.Fatalf("Count: %d, %v", n, err)
		}
	}); n != 0 {
		t.Fatalf("got %v allocs per Count of 50 entries (25 with headers), want 0", n)
	}
}

// FuzzBatch feeds arbitrary entries after a valid batch header: Count
// and Next must agree, and what Count passes Next decodes.
func FuzzBatch(f *testing.F) {
	f.Add(AppendEntry(nil, content(nil, "a")))
	f.Add(append(AppendEntry(nil, content(spmesh.Header{"k": "v"}, "bc")), AppendEntry(nil, []byte{0x81, 5, 3})...))
	f.Add([]byte{0xc4, 0})
	f.Add([]byte{0xc4, 3, 0x81, 3, 0x80, 0xc4, 1, 0x80})
	f.Add([]byte{0xc4, 7, 0x81, 3, 0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xc5, 0, 5, 0x82, 99, 0x91, 0x90, 1})
	head := AppendHeader(nil, &Msg{Kind: KindBatch, Topic: "t", ID: ID{15: 1}, Time: 9, Pub: 3, Seq: 1})
	f.Fuzz(func(t *testing.T, ents []byte) {
		frame := append(append([]byte(nil), head...), ents...)
		var b Msg
		if err := Decode(frame, &b); err != nil {
			t.Fatalf("batch header: %v", err)
		}
		fuzzEntries(t, &b)
	})
}

func TestDecodeErrorsCarryCode(t *testing.T) {
	var m Msg
	err := Decode([]byte{1, 2, 0xc1}, &m)
	var c spmesh.Coder
	if !errors.Is(err, spmesh.ErrDecode) || !errors.As(err, &c) || c.Code() != spmesh.CodeDecode {
		t.Fatalf("got %v, want ErrDecode with code %d", err, spmesh.CodeDecode)
	}
}
