package wire

import (
	"errors"
	"reflect"
	"testing"

	"github.com/spmesh/spmesh"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func full() *Msg {
	return &Msg{
		Kind: KindPublish, Topic: "images.ready", ID: ID{1, 2, 3, 15: 16}, Time: 1700000000123456789,
		Header: spmesh.Header{"trace": "abc", "k": "v"}, Pub: 1 << 40, Seq: 300,
		Attempt: 3, Deadline: -5, Code: -70000, Err: "boom", From: "worker-1", Flags: FlagNack, Credit: 16, InFlight: 5,
	}
}

func TestRoundTrip(t *testing.T) {
	cases := []*Msg{
		full(),
		{Kind: KindRequest, ID: ID{9}, Time: 1},
		{Kind: KindReply, Err: "x", Code: 7},
		{Kind: KindSurvey, Deadline: 1 << 62, Header: spmesh.Header{"": ""}},
	}
	for _, want := range cases {
		body := []byte("payload")
		frame := append(AppendHeader(nil, want), body...)
		var got Msg
		if err := Decode(frame, &got); err != nil {
			t.Fatalf("decode %+v: %v", want, err)
		}
		w := *want
		w.Body = body
		if !reflect.DeepEqual(&got, &w) {
			t.Fatalf("got %+v, want %+v", got, w)
		}
	}
}

func TestTruncatedFramesFail(t *testing.T) {
	frame := AppendHeader(nil, full())
	for i := 0; i < len(frame); i++ {
		var m Msg
		err := Decode(frame[:i], &m)
		if err == nil {
			t.Fatalf("prefix of %d/%d bytes decoded without error", i, len(frame))
		}
		if !errors.Is(err, spmesh.ErrDecode) {
			t.Fatalf("got %v, want an error wrapping ErrDecode", err)
		}
	}
}

func TestRejects(t *testing.T) {
	bad := map[string][]byte{
		"empty":         {},
		"version":       {2, 1, 0x80},
		"kind zero":     {1, 0, 0x80},
		"kind high":     {1, 200, 0x80},
		"topic no nul":  []byte("abc"),
		"topic on req":  append([]byte("t\x00"), 1, byte(KindRequest), 0x80),
		"publish no tp": {1, byte(KindPublish), 0x80},
		"huge map":      {1, 2, 0xdf, 0xff, 0xff, 0xff, 0xff},
		"huge headers":  {1, 2, 0x81, 3, 0xdf, 0xff, 0xff, 0xff, 0xff},
		"huge str":      {1, 2, 0x81, 9, 0xdb, 0xff, 0xff, 0xff, 0xff},
		"short id":      {1, 2, 0x81, 1, 0xc4, 1, 0},
		"deep unknown":  {1, 2, 0x81, 99, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0},
		"attempt range": {1, 2, 0x81, 6, 0xcf, 1, 0, 0, 0, 0, 0, 0, 0},
	}
	for name, frame := range bad {
		var m Msg
		if err := Decode(frame, &m); err == nil {
			t.Errorf("%s: decoded without error: %+v", name, m)
		}
	}
}

func TestUnknownKeysSkipped(t *testing.T) {
	// map of 2: key 50 -> [1, "x", {1: 2}], key 2 -> 7, then body.
	frame := []byte{1, byte(KindRequest), 0x82, 50, 0x93, 1, 0xa1, 'x', 0x81, 1, 2, 2, 7, 'B'}
	var m Msg
	if err := Decode(frame, &m); err != nil {
		t.Fatal(err)
	}
	if m.Time != 7 || string(m.Body) != "B" {
		t.Fatalf("got time %d body %q, want 7 \"B\"", m.Time, m.Body)
	}
}

func TestAppendHeaderAllocs(t *testing.T) {
	m := &Msg{Kind: KindPublish, Topic: "a.b", Pub: 5, Seq: 6, Time: 7}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = AppendHeader(buf[:0], m) }); n != 0 {
		t.Fatalf("got %v allocs per AppendHeader, want 0", n)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(AppendHeader(nil, full()))
	f.Add(append(AppendHeader(nil, &Msg{Kind: KindRequest, Attempt: 1}), "body"...))
	f.Add([]byte{1, byte(KindReply), 0x82, 8, 0xd0, 0x80, 9, 0xa2, 'h', 'i'})
	f.Add([]byte("t.x\x00\x01\x01\x80"))
	f.Add([]byte{1, 2, 0x81, 99, 0xc7, 3, 1, 1, 2, 3})
	// Batches (kind 9): plain, with headers, with an entry overriding seq.
	f.Add(batchOf(&Msg{Topic: "t", ID: ID{15: 5}, Time: 1, Pub: 2, Seq: 7}, content(nil, "a"), content(spmesh.Header{"k": "v"}, "bc")))
	f.Add(batchOf(&Msg{Topic: "a.b.c", Seq: 1 << 40, Pub: 1 << 63}, []byte{0x81, 5, 3, 'x'}, content(nil, "")))
	f.Add([]byte("t\x00\x01\x09\x80\xc4\x01\x80"))
	f.Add([]byte("t\x00\x01\x09\x80\xc5\x00\x02\x80\x00\xc4\x01\x91"))
	// Tail frames (kind 10): the documented example, and one with a body.
	f.Add([]byte("t\x00\x01\x0a\x82\x04\x03\x05\x07"))
	f.Add(append(AppendHeader(nil, &Msg{Kind: KindTail, Topic: "a.b", Pub: 1 << 63, Seq: 1 << 40}), 'x'))
	// Interest frames (kind 11).
	f.Add([]byte{1, 0x0b, 0x80, 0xc4, 2, 'a', '.', 0xc4, 2, 'b', 0})
	f.Add(AppendInterest(nil, 64<<10, [][]byte{{}, []byte("x.y.")}))
	f.Fuzz(func(t *testing.T, frame []byte) {
		var m Msg
		if err := Decode(frame, &m); err != nil {
			return
		}
		if m.Kind == KindBatch {
			fuzzEntries(t, &m)
		}
		if m.Kind == KindInterest {
			if ps, err := ParseInterest(m.Body); err == nil && len(ps) > MaxInterest {
				t.Fatalf("got %d prefixes, over the limit", len(ps))
			}
		}
		// What decodes must re-encode to a frame that decodes to the same message.
		again := append(AppendHeader(nil, &m), m.Body...)
		var m2 Msg
		if err := Decode(again, &m2); err != nil {
			t.Fatalf("re-encoded frame failed: %v", err)
		}
		if len(m.Header) == 0 {
			m.Header, m2.Header = nil, nil
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("got %+v after re-encoding, want %+v", m2, m)
		}
	})
}

// fuzzEntries checks a decoded batch: Count agrees with Next, and every
// entry re-encodes as a plain frame that decodes to the same message.
func fuzzEntries(t *testing.T, b *Msg) {
	e := NewEntries(b)
	n, cerr := e.Count()
	got := 0
	for {
		var m Msg
		ok, err := e.Next(&m)
		if err != nil {
			if !errors.Is(err, spmesh.ErrDecode) {
				t.Fatalf("got %v, want an error wrapping ErrDecode", err)
			}
			if cerr == nil {
				t.Fatalf("Count passed the batch (%d entries), Next failed at %d: %v", n, got, err)
			}
			return
		}
		if !ok {
			break
		}
		got++
		if m.Kind != KindPublish || m.Topic != b.Topic {
			t.Fatalf("got entry kind %d topic %q, want kind 1 on %q", m.Kind, m.Topic, b.Topic)
		}
		again := append(AppendHeader(nil, &m), m.Body...)
		var m2 Msg
		if err := Decode(again, &m2); err != nil {
			t.Fatalf("re-encoded entry failed: %v", err)
		}
		if len(m.Header) == 0 {
			m.Header, m2.Header = nil, nil
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("got %+v after re-encoding, want %+v", m2, m)
		}
	}
	if cerr != nil || got != n {
		t.Fatalf("Next read %d entries, Count said %d (%v)", got, n, cerr)
	}
}

func BenchmarkAppendHeader(b *testing.B) {
	m := &Msg{Kind: KindPublish, Topic: "images.ready", Pub: 5, Seq: 6, Time: 7}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendHeader(buf[:0], m)
	}
}

func BenchmarkDecode(b *testing.B) {
	frame := append(AppendHeader(nil, &Msg{Kind: KindPublish, Topic: "images.ready", Pub: 5, Seq: 6, Time: 7}), make([]byte, 256)...)
	var m Msg
	b.ReportAllocs()
	for b.Loop() {
		if err := Decode(frame, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// The tail frame of the package doc decodes as documented, and a tail frame
// without a topic is refused.
func TestTailFrame(t *testing.T) {
	frame := []byte{'t', 0, 1, 0x0a, 0x82, 4, 3, 5, 7}
	var m Msg
	if err := Decode(frame, &m); err != nil {
		t.Fatal(err)
	}
	if m.Kind != KindTail || m.Topic != "t" || m.Pub != 3 || m.Seq != 7 || len(m.Body) != 0 {
		t.Fatalf("got %+v", m)
	}
	var m2 Msg
	if err := Decode(AppendHeader(nil, &Msg{Kind: KindTail, Topic: "t", Pub: 3, Seq: 7}), &m2); err != nil || m2.Kind != KindTail || m2.Pub != 3 || m2.Seq != 7 {
		t.Fatalf("encoded tail frame: got %+v, %v", m2, err)
	}
	if err := Decode(frame[2:], &m); err == nil {
		t.Fatal("tail frame without a topic decoded")
	}
}

// The interest frame of the package doc decodes as documented, and the
// limits hold.
func TestInterestFrame(t *testing.T) {
	frame := []byte{1, 0x0b, 0x81, 0x0e, 0xce, 0, 0x80, 0, 0, 0xc4, 2, 'a', '.', 0xc4, 2, 'b', 0}
	if got := AppendInterest(nil, 8<<20, [][]byte{[]byte("a."), []byte("b\x00")}); string(got) != string(frame) {
		t.Fatalf("encoded % x, want % x", got, frame)
	}
	var m Msg
	if err := Decode(frame, &m); err != nil || m.Kind != KindInterest || m.Frame != 8<<20 {
		t.Fatalf("got %+v, %v", m, err)
	}
	// A subscriber that says no limit (spmesh before key 14) sends an
	// empty map.
	if got := AppendInterest(nil, 0, nil); string(got) != "\x01\x0b\x80" {
		t.Fatalf("no frame limit: encoded % x", got)
	}
	ps, err := ParseInterest(m.Body)
	if err != nil || len(ps) != 2 || string(ps[0]) != "a." || string(ps[1]) != "b\x00" {
		t.Fatalf("got %q, %v", ps, err)
	}
	many := make([][]byte, MaxInterest+1)
	if _, err := ParseInterest(AppendInterest(nil, 0, many)[3:]); err == nil {
		t.Fatal("over MaxInterest prefixes parsed")
	}
	if _, err := ParseInterest(AppendInterest(nil, 0, [][]byte{make([]byte, 1025)})[3:]); err == nil {
		t.Fatal("a prefix over 1024 bytes parsed")
	}
	if _, err := ParseInterest([]byte{0xc4, 9, 'x'}); err == nil {
		t.Fatal("a truncated prefix parsed")
	}
}
