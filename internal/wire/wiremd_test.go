package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/spmesh/spmesh"
)

// The worked examples of WIRE.md (at the repository root) are the bytes
// this package writes: each block marked <!-- wire:example NAME --> must
// equal the encoding of the example of that name below, every example
// must be in WIRE.md, and each decodes back to what it was made from.
// Run with -v to print the encodings.

const (
	exTime = 1700000000000000000 // 2023-11-14T22:13:20Z in Unix nanoseconds
	exID   = "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
)

func exampleID() (id ID) { copy(id[:], exID); return id }

type wireExample struct {
	name  string
	msg   *Msg // nil: not a plain envelope (interest, batch, SP frame)
	frame []byte
}

func wireExamples() []wireExample {
	id := exampleID()
	var out []wireExample
	add := func(name string, m *Msg) {
		out = append(out, wireExample{name, m, append(AppendHeader(nil, m), m.Body...)})
	}
	add("publish", &Msg{Kind: KindPublish, Topic: "orders.new", ID: id, Time: exTime,
		Header: spmesh.Header{"k": "v"}, Pub: 7, Seq: 1, Body: []byte("hi")})
	add("publish-minimal", &Msg{Kind: KindPublish, Topic: "t", Body: []byte("hi")})
	add("tail", &Msg{Kind: KindTail, Topic: "t", Time: exTime, Pub: 7, Seq: 2})
	add("request", &Msg{Kind: KindRequest, ID: id, Time: exTime, Attempt: 1,
		Deadline: exTime + 5e9, Body: []byte("hi")})
	add("reply", &Msg{Kind: KindReply, ID: id, Attempt: 1, Credit: 16, Body: []byte("ok")})
	add("reply-error", &Msg{Kind: KindReply, ID: id, Attempt: 1, Code: 42, Err: "no such order", Credit: 16})
	add("push", &Msg{Kind: KindPush, ID: id, Time: exTime, Body: []byte("hi")})
	add("job", &Msg{Kind: KindJob, ID: id, Time: exTime, Attempt: 2, Body: []byte("hi")})
	add("ack", &Msg{Kind: KindAck, ID: id, Attempt: 2, Credit: 16, InFlight: 3})
	add("nack", &Msg{Kind: KindAck, ID: id, Attempt: 2, Code: 42, Err: "busy", Flags: FlagNack, Credit: 16})
	add("survey", &Msg{Kind: KindSurvey, ID: id, Time: exTime, Deadline: exTime + 1e9, Body: []byte("hi")})
	add("answer", &Msg{Kind: KindResponse, ID: id, From: "node-a", Body: []byte("ok")})
	add("answer-declined", &Msg{Kind: KindResponse, ID: id, From: "node-a", Flags: FlagDeclined})

	// Batch: two entries, the second with its own header.
	b := AppendHeader(nil, &Msg{Kind: KindBatch, Topic: "t", ID: id, Time: exTime, Pub: 7, Seq: 3})
	b = AppendEntry(b, append(AppendEntryHead(nil, nil), "a"...))
	b = AppendEntry(b, append(AppendEntryHead(nil, spmesh.Header{"k": "v"}), "bc"...))
	out = append(out, wireExample{name: "batch", frame: b})

	out = append(out, wireExample{name: "interest", frame: AppendInterest(nil, 8<<20, [][]byte{[]byte("orders."), []byte("t\x00")})})

	// The request above as it goes over SP/TCP: 64-bit length, the REQ
	// request id (high bit set), the envelope.
	req := out[3].frame
	tcp := binary.BigEndian.AppendUint64(nil, uint64(4+len(req)))
	tcp = binary.BigEndian.AppendUint32(tcp, 0x80000001)
	out = append(out, wireExample{name: "request-sptcp", frame: append(tcp, req...)})
	return out
}

// wireMDExamples reads the marked example blocks of WIRE.md: in each line,
// the hex bytes are what comes before the first two spaces.
func wireMDExamples(t *testing.T) map[string][]byte {
	t.Helper()
	f, err := os.ReadFile("../../WIRE.md")
	if err != nil {
		t.Fatalf("WIRE.md: %v", err)
	}
	out := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(f))
	name, in := "", false
	for ln := 1; sc.Scan(); ln++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "<!-- wire:example "):
			name = strings.TrimSuffix(strings.TrimPrefix(line, "<!-- wire:example "), " -->")
			if _, dup := out[name]; dup {
				t.Fatalf("WIRE.md:%d: example %q twice", ln, name)
			}
			out[name] = nil
		case strings.HasPrefix(line, "```") && name != "":
			if in {
				name, in = "", false
			} else {
				in = true
			}
		case in:
			hexPart, _, _ := strings.Cut(line, "  ")
			for _, tok := range strings.Fields(hexPart) {
				b, err := hex.DecodeString(tok)
				if err != nil || len(b) != 1 {
					t.Fatalf("WIRE.md:%d: example %q: %q is not a hex byte", ln, name, tok)
				}
				out[name] = append(out[name], b[0])
			}
		}
	}
	return out
}

func TestWireMDExamples(t *testing.T) {
	doc := wireMDExamples(t)
	for _, ex := range wireExamples() {
		t.Logf("%s:\n% x", ex.name, ex.frame)
		got, ok := doc[ex.name]
		if !ok {
			t.Errorf("WIRE.md has no example %q", ex.name)
			continue
		}
		delete(doc, ex.name)
		if !bytes.Equal(got, ex.frame) {
			t.Errorf("WIRE.md example %q:\ngot  % x\nwant % x", ex.name, got, ex.frame)
		}
		if ex.msg != nil {
			var m Msg
			if err := Decode(got, &m); err != nil {
				t.Errorf("example %q: %v", ex.name, err)
				continue
			}
			if fmt.Sprint(m) != fmt.Sprint(*ex.msg) {
				t.Errorf("example %q decodes to\n%+v\nwant\n%+v", ex.name, m, *ex.msg)
			}
		}
	}
	for name := range doc {
		t.Errorf("WIRE.md example %q is not checked by this test", name)
	}
}
