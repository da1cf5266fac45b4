package foreign

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"go/build"
	"os"
	"reflect"
	"strings"
	"testing"
)

// The package must stay foreign: the standard library only, in its code
// and its tests, so that it cannot borrow spmesh's encoder.
func TestImportsOnlyStd(t *testing.T) {
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range append(append(p.Imports, p.TestImports...), p.XTestImports...) {
		if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") {
			t.Errorf("imports %s: a foreign peer uses the standard library only", imp)
		}
	}
}

// docExamples reads WIRE.md's marked example blocks: in each line, the
// bytes are the leading two-digit hex words, before the comment.
func docExamples(t *testing.T) map[string][]byte {
	t.Helper()
	f, err := os.ReadFile("../../WIRE.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	name, in := "", false
	sc := bufio.NewScanner(bytes.NewReader(f))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "<!-- wire:example "):
			name = strings.TrimSuffix(strings.TrimPrefix(line, "<!-- wire:example "), " -->")
		case name != "" && line == "```" && !in:
			in = true
		case in && line == "```":
			in, name = false, ""
		case in:
			for _, w := range strings.Fields(line) {
				b, err := hex.DecodeString(w)
				if err != nil || len(b) != 1 {
					break
				}
				out[name] = append(out[name], b[0])
			}
		}
	}
	if len(out) < 10 {
		t.Fatalf("found %d examples in WIRE.md", len(out))
	}
	return out
}

var (
	exID   = [16]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	exTime = int64(1700000000000000000)
)

// Every plain example of WIRE.md parses, by this package written from the
// document's tables, into the values its comments state, and those values
// encode back into the same bytes.
func TestDocExamples(t *testing.T) {
	ex := docExamples(t)
	want := map[string]Envelope{
		"publish": {Topic: "orders.new", Kind: KindPublish, ID: exID, Time: exTime,
			Headers: map[string]string{"k": "v"}, Pub: 7, Seq: 1, Body: []byte("hi")},
		"publish-minimal": {Topic: "t", Kind: KindPublish, Body: []byte("hi")},
		"tail":            {Topic: "t", Kind: KindTail, Time: exTime, Pub: 7, Seq: 2},
		"request": {Kind: KindRequest, ID: exID, Time: exTime, Attempt: 1,
			Deadline: exTime + 5e9, Body: []byte("hi")},
		"reply":           {Kind: KindReply, ID: exID, Attempt: 1, Credit: 16, Body: []byte("ok")},
		"reply-error":     {Kind: KindReply, ID: exID, Attempt: 1, Code: 42, Err: "no such order", Credit: 16},
		"push":            {Kind: KindPush, ID: exID, Time: exTime, Body: []byte("hi")},
		"job":             {Kind: KindJob, ID: exID, Time: exTime, Attempt: 2, Body: []byte("hi")},
		"ack":             {Kind: KindAck, ID: exID, Attempt: 2, Credit: 16, InFlight: 3},
		"nack":            {Kind: KindAck, ID: exID, Attempt: 2, Code: 42, Err: "busy", Flags: FlagNack, Credit: 16},
		"survey":          {Kind: KindSurvey, ID: exID, Time: exTime, Deadline: exTime + 1e9, Body: []byte("hi")},
		"answer":          {Kind: KindResponse, ID: exID, From: "node-a", Body: []byte("ok")},
		"answer-declined": {Kind: KindResponse, ID: exID, From: "node-a", Flags: FlagDeclined},
	}
	for name, w := range want {
		doc, ok := ex[name]
		if !ok {
			t.Errorf("%s: not in WIRE.md", name)
			continue
		}
		got, err := Parse(doc)
		if err != nil {
			t.Errorf("%s: % x: %v", name, doc, err)
			continue
		}
		got.Keys = nil
		if len(got.Body) == 0 {
			got.Body = nil
		}
		if !reflect.DeepEqual(*got, w) {
			t.Errorf("%s: parsed\n%+v\nwant\n%+v", name, *got, w)
		}
		if b := w.Append(nil); !bytes.Equal(b, doc) {
			t.Errorf("%s: encoded\n% x\nWIRE.md has\n% x", name, b, doc)
		}
	}

	// Batch: entry i has the batch id plus i, the batch seq plus i, the
	// batch's pub and time, its own headers only.
	b, err := Parse(ex["batch"])
	if err != nil {
		t.Fatal(err)
	}
	es, err := Entries(b)
	if err != nil {
		t.Fatal(err)
	}
	id1 := exID
	id1[15]++
	wantE := []Envelope{
		{Topic: "t", Kind: KindPublish, ID: exID, Time: exTime, Pub: 7, Seq: 3, Body: []byte("a")},
		{Topic: "t", Kind: KindPublish, ID: id1, Time: exTime, Pub: 7, Seq: 4, Headers: map[string]string{"k": "v"}, Body: []byte("bc")},
	}
	if len(es) != len(wantE) {
		t.Fatalf("batch: got %d entries, want 2", len(es))
	}
	for i, e := range es {
		e.Keys = nil
		if !reflect.DeepEqual(*e, wantE[i]) {
			t.Errorf("batch entry %d: got\n%+v\nwant\n%+v", i, *e, wantE[i])
		}
	}

	if b := AppendInterest(nil, 8<<20, "orders.", "t\x00"); !bytes.Equal(b, ex["interest"]) {
		t.Errorf("interest: encoded % x, WIRE.md has % x", b, ex["interest"])
	}
	in, err := Parse(ex["interest"])
	if err != nil {
		t.Fatal(err)
	}
	if in.Frame != 8<<20 {
		t.Errorf("interest: frame limit %d, want %d", in.Frame, 8<<20)
	}
	if ps, err := Prefixes(in); err != nil || !reflect.DeepEqual(ps, []string{"orders.", "t\x00"}) {
		t.Errorf("interest: got prefixes %q, %v", ps, err)
	}
	batch := (&Envelope{Topic: "t", Kind: KindBatch, ID: exID, Time: exTime, Pub: 7, Seq: 3}).Append(nil)
	batch = AppendEntry(batch, nil, []byte("a"))
	batch = AppendEntry(batch, map[string]string{"k": "v"}, []byte("bc"))
	if !bytes.Equal(batch, ex["batch"]) {
		t.Errorf("batch: encoded % x, WIRE.md has % x", batch, ex["batch"])
	}

	// The SP/TCP frame: length, request id, the request envelope.
	f := ex["request-sptcp"]
	if len(f) < 12 || binary.BigEndian.Uint64(f) != uint64(len(f)-8) || binary.BigEndian.Uint32(f[8:]) != 0x80000001 || !bytes.Equal(f[12:], ex["request"]) {
		t.Errorf("request-sptcp: % x is not length, 80 00 00 01, the request", f)
	}
}

// Garbage is refused, never allocated for: claimed lengths are checked
// against the bytes there.
func TestParseRefuses(t *testing.T) {
	for _, f := range [][]byte{
		nil, {0}, {1}, {2, 1, 0x80}, []byte("hello"),
		{1, 2, 0xdf, 0xff, 0xff, 0xff, 0xff},
		{1, 2, 0x81, 1, 0xc6, 0xff, 0xff, 0xff, 0xff},
		{1, 1, 0x80}, // a publish without a topic
		{'t', 0, 1, 2, 0x80},
	} {
		if e, err := Parse(f); err == nil {
			t.Errorf("% x: parsed as %+v, want an error", f, e)
		}
	}
}

// Integers round-trip in every width, a publisher id above 2^63 - 1 and
// negative codes included.
func TestRoundTrip(t *testing.T) {
	for _, e := range []Envelope{
		{Topic: "a.b", Kind: KindPublish, Pub: 1<<63 + 5, Seq: 1 << 40, Time: -1, Body: []byte("x")},
		{Kind: KindReply, Attempt: 300, Code: -3, Err: strings.Repeat("e", 300), Credit: 70000, Time: -200},
		{Kind: KindResponse, Code: -40000, From: "n", Flags: FlagDeclined, Time: 1 << 33},
	} {
		got, err := Parse(e.Append(nil))
		if err != nil {
			t.Fatalf("%+v: %v", e, err)
		}
		got.Keys = nil
		if len(e.Body) == 0 {
			got.Body = nil
		}
		if !reflect.DeepEqual(*got, e) {
			t.Errorf("got\n%+v\nwant\n%+v", *got, e)
		}
	}
}
