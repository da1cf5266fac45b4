package hostile

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/spmesh/spmesh/internal/wire"
)

// Envelope returns a valid spmesh envelope of kind k (topic for publish
// and batch frames) followed by body, which is not checked.
func Envelope(k wire.Kind, topic string, body []byte) []byte {
	b := wire.AppendHeader(nil, &wire.Msg{Kind: k, Topic: topic, Time: time.Now().UnixNano(), Attempt: 1})
	return append(b, body...)
}

// Body is a named hostile msgpack body.
type Body struct {
	Name string
	B    []byte
}

// Nesting is n levels of one-element arrays around a nil: n+1 bytes that
// a recursive decoder descends n levels into.
func Nesting(n int) []byte {
	return append(bytes.Repeat([]byte{0x91}, n), 0xc0)
}

// Bodies are the msgpack bodies that claim far more than they hold: 32-bit
// array, map, str, bin and ext claims at the top level and one level down
// (in an array and as a map value), and a 16-bit array claim of nils. Each
// is at most a few bytes; decoding any of them into any type must fail
// (or, for the 16-bit claim, allocate within a small multiple of its size)
// rather than allocate from the claim. Deep nesting is [Nesting].
func Bodies() []Body {
	ff := []byte{0xff, 0xff, 0xff, 0xff}
	c := func(p ...byte) []byte { return append(p, ff...) }
	return []Body{
		{"array32", c(0xdd)},
		{"map32", c(0xdf)},
		{"str32", c(0xdb)},
		{"bin32", c(0xc6)},
		{"ext32", append(c(0xc9), 1)},
		{"array16", []byte{0xdc, 0xff, 0xff}},
		{"map16", []byte{0xde, 0xff, 0xff}},
		{"array-of-array32", c(0x91, 0xdd)},
		{"map-of-map32", c(0x81, 0xa1, 'k', 0xdf)},
		{"array-of-bin32", c(0x91, 0xc6)},
		{"array32-of-struct-maps", append(c(0xdd), 0x81, 0xa1, 'A', 0xdd, 0xff, 0xff, 0xff, 0xff)},
	}
}

// HeaderClaim returns an envelope of kind k (topic for pub/sub) of about
// size bytes whose user-header map (key 3) claims as many pairs as could
// fit in the frame, followed by filler that is not a string: a decoder that
// sizes the map from the claim allocates tens of times the frame.
func HeaderClaim(k wire.Kind, topic string, size int) []byte {
	b := wire.AppendHeader(nil, &wire.Msg{Kind: k, Topic: topic})
	// The header map's length (a fixmap) follows the topic, version and
	// kind: add one key, 3 -> a map32 claim, at its end.
	i := 2
	if topic != "" {
		i += len(topic) + 1
	}
	n := int(b[i] & 0x0f)
	hdr := append([]byte{}, b[:i]...)
	hdr = append(hdr, 0x80|byte(n+1))
	hdr = append(hdr, b[i+1:]...)
	claim := uint32(max(size-len(hdr)-6, 0) / 2)
	hdr = append(hdr, 3, 0xdf)
	hdr = binary.BigEndian.AppendUint32(hdr, claim)
	return append(hdr, bytes.Repeat([]byte{0xc0}, max(size-len(hdr), 0))...)
}

// BatchClaim returns a pub/sub batch frame on topic of n entries that are
// as small as the format allows (an empty bin, c4 00): a subscriber that
// makes one message per entry before checking them holds n messages for 2n
// bytes.
func BatchClaim(topic string, n int) []byte {
	b := wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindBatch, Topic: topic, Time: 1, Pub: 1, Seq: 1})
	return append(b, bytes.Repeat([]byte{0xc4, 0x00}, n)...)
}

// BatchBinClaim returns a batch frame on topic whose one entry claims a
// 4 GiB bin and holds a few bytes.
func BatchBinClaim(topic string) []byte {
	b := wire.AppendHeader(nil, &wire.Msg{Kind: wire.KindBatch, Topic: topic, Time: 1, Pub: 1, Seq: 1})
	return append(b, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x80, 'x')
}

// Truncations returns every strict prefix of frame (the empty one
// included) at most limit of them, spread evenly when frame is longer.
func Truncations(frame []byte, limit int) [][]byte {
	n := len(frame)
	step := max(1, n/limit)
	var out [][]byte
	for i := 0; i < n; i += step {
		out = append(out, frame[:i])
	}
	return out
}

// Garbage returns frames of bytes that are not envelopes: random-looking
// bytes, bad versions and kinds, text.
func Garbage() [][]byte {
	return [][]byte{
		{},
		{0},
		{0xff},
		{1},
		{1, 0},
		{1, 99, 0x80},
		{2, 1, 0x80},
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		[]byte("t\x00\x01\x01\xdf\xff\xff\xff\xff"),
		[]byte("no.terminator"),
		bytes.Repeat([]byte{0xa5, 0x5a}, 300),
		{1, 2, 0xdf, 0xff, 0xff, 0xff, 0xff},
		{1, 2, 0x81, 99, 0xdd, 0xff, 0xff, 0xff, 0xff},
	}
}

// Item is the struct of the suite's []struct decode target.
type Item struct {
	A int64
	B string
	C []byte
	D map[string]any
}

// DecodeTypes decodes with dec (a Request's, Job's, Message's... Decode
// method) into each type of the suite: any, map[string]any, []Item,
// []int64, []byte. It returns how many decodes failed.
func DecodeTypes(dec func(v any) error) (failed int) {
	var (
		a  any
		m  map[string]any
		s  []Item
		is []int64
		bs []byte
	)
	for _, v := range []any{&a, &m, &s, &is, &bs} {
		if dec(v) != nil {
			failed++
		}
	}
	return failed
}
