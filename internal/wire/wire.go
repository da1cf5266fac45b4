// Package wire is spmesh's one envelope, shared by every pattern.
//
// The specification for peers in other languages (NNG, nanomsg, pynng) is
// WIRE.md at the repository root: the SP transport, this envelope byte by
// byte with a worked example per kind (checked against this package's
// encoder by wiremd_test.go), and the rules a foreign peer must follow: a
// reply or ack echoes the request's id (key 1) and is refused otherwise; a
// job without an id (16 zero bytes) is never de-duplicated. This comment
// summarises it for Go readers; keep the two consistent.
//
// # Frame
//
// One envelope is the body of one SP message (what mangos calls a message
// body; the SP protocol headers, such as REQ request ids, are separate):
//
//	[topic 0x00]   pub/sub only (kinds 1, 9 and 10): the topic's UTF-8 bytes,
//	               then one 0x00 byte
//	version        1 byte, currently 0x01
//	kind           1 byte (see Kind)
//	header         one msgpack map, keys are small unsigned integers
//	body           all remaining bytes, as produced by the message's codec
//
// Topics never contain bytes below 0x20 and the version byte is 0x01, so a
// decoder tells a topic-prefixed frame from a plain one by its first byte.
// Putting the topic first lets a SUB socket's prefix filter work.
//
// # Header keys
//
//	1  id        bin 16     message id, stable across resends (de-duplication)
//	2  time      int        send time, Unix nanoseconds
//	3  headers   map        user headers, str -> str
//	4  pub       uint       publisher id (pub/sub)
//	5  seq       uint       publisher sequence number, from 1, +1 per message
//	6  attempt   uint       delivery attempt, from 1 (req/rep, jobs)
//	7  deadline  int        caller's deadline, Unix nanoseconds (0: none)
//	8  code      int        error code of a remote error (with key 9)
//	9  error     str        error message: the handler failed
//	10 from      str        responses: the survey respondent's name
//	11 flags     uint       bit 0: declined (survey), bit 1: nack (jobs)
//	12 credit    uint       replies, acks: how many requests the sender takes at once
//	13 inflight  uint       acks: jobs the worker is running (every producer's) as it sends it
//	14 frame     uint       interest: the largest frame the subscriber accepts, bytes
//
// Keys may appear in any order; absent keys take their zero value; unknown
// keys are skipped, so later versions can add keys. Integers may use any
// msgpack integer encoding.
//
// # Batch frame (pub/sub)
//
// A publisher under load packs consecutive messages of one topic into one
// frame of kind 9, so that a burst costs one SP message instead of one per
// message. It starts like a plain pub/sub frame, so SUB prefix filters work
// unchanged:
//
//	topic 0x00     the topic's bytes and one 0x00 byte, as for kind 1
//	version        1 byte, 0x01
//	kind           1 byte, 0x09
//	header         one msgpack map (same keys): the batch's base values
//	entries        one or more, up to the end of the frame
//
// Each entry is one message, framed as a msgpack bin: 0xc4 and a 1-byte
// length, 0xc5 and a 2-byte, or 0xc6 and a 4-byte big-endian length, then
// that many bytes:
//
//	entry header   one msgpack map (same keys) holding what this message
//	               does not take from the batch: usually empty (0x80) or
//	               only key 3 (headers)
//	body           the rest of the entry's bytes
//
// Entry i (counting from 0) is the pub/sub message (kind 1) on the batch's
// topic whose header keys are, before its own map is applied:
//
//	id        the batch id with its last 8 bytes, read as a big-endian
//	          unsigned integer, plus i (modulo 2^64)
//	seq       the batch seq plus i
//	headers   none (a key 3 in the batch header is not inherited)
//	any other key (time, pub, ...): the batch header's value
//
// Keys present in the entry's own map then replace these. Entries are in
// publish order. A batch with no entry, an empty entry, an entry that is
// not a bin, or an entry whose map runs past its end fails the whole
// frame. Example: topic "t", batch id 00..05, time T, publisher P, seq 7,
// two entries with bodies "a" and "bc" (the second with header k=v):
//
//	74 00 01 09                     "t", 0x00, version, kind 9
//	84 01 c4 10 00..05 02 <T> 04 <P> 05 07     batch header, 4 keys
//	c4 02 80 61                     entry 0: id 00..05, seq 7, body "a"
//	c4 09 81 03 81 a1 6b a1 76 62 63    entry 1: id 00..06, seq 8, {k: v}, body "bc"
//
// Decoders that predate kind 9 discard batch frames as an unknown kind, so
// a publisher talking to them must not batch.
//
// # Tail frame (pub/sub heartbeat)
//
// A publisher that goes idle after publishing on a topic sends, once, a
// frame of kind 10 on that topic holding the topic's last sequence number,
// so that a subscriber counts the messages it missed at the end of a burst
// (otherwise a gap shows only when a later message arrives). It starts
// like a plain pub/sub frame, so SUB prefix filters pass it exactly when
// they pass the topic's messages:
//
//	topic 0x00     the topic's bytes and one 0x00 byte
//	version        1 byte, 0x01
//	kind           1 byte, 0x0a
//	header         one msgpack map: key 4 (pub) and key 5 (seq: the last
//	               sequence number the publisher sent on the topic); other
//	               keys may appear and are ignored
//	body           empty (a receiver ignores any)
//
// A tail frame carries no message: it is never delivered to an
// application. Example (the least a decoder accepts; spmesh also writes
// keys 1 and 2): topic "t", publisher 3, last seq 7:
//
//	74 00 01 0a 82 04 03 05 07
//
// Decoders that predate kind 10 discard it as an unknown kind.
//
// # Interest frame (pub/sub, subscriber to publisher)
//
// A subscriber tells each publisher it is connected to which topic
// prefixes it subscribes to, so that the publisher sends it only frames
// that start with one of them (the subscriber still filters what it
// gets). The frame is plain (no topic), sent on the SUB side of the
// connection, first when it is established and again after each change:
//
//	version        1 byte, 0x01
//	kind           1 byte, 0x0b
//	header         one msgpack map: key 14 (frame), the largest frame the
//	               subscriber accepts, in bytes (its receive limit); absent
//	               or 0: not said; other keys are ignored
//	prefixes       zero or more msgpack bins to the end of the frame: the
//	               whole set of prefixes (replacing any earlier one); an
//	               empty bin matches every frame
//
// At most [MaxInterest] (1,024) prefixes of at most 1,024 bytes each; a
// frame past either, or malformed, is discarded and the publisher sends
// that subscriber everything. A publisher that has received no interest
// frame on a connection (a stock SUB peer) sends it everything. The frame
// key sizes batch frames: a publisher's batch frames stay within the
// smallest limit its subscribers said, and within 8 KiB - 1 while any of
// them has said none (spmesh before key 14, a stock SUB); a limit below
// 8 KiB - 1 counts as 8 KiB - 1 (the key only raises the bound). Example:
// prefixes "a." and "b\x00", frames up to 8 MiB:
//
//	01 0b 81 0e ce 00 80 00 00 c4 02 61 2e c4 02 62 00
//
// # Limits
//
// Decoding never panics and reads only within the frame. Every count is
// checked against the bytes that remain before anything is sized from it:
// a header map needs two bytes a pair, a str or bin its length, and
// unknown keys are skipped with the same checks (nesting at most 8 deep).
// The user header map (key 3) holds at most [MaxHeaders] (1,024) pairs and
// is made only after every pair has been checked, sized by the pairs read,
// not by the claim: a frame allocates at most the strings it holds plus
// the map, whatever it claims. The body aliases the frame.
//
// A batch is checked whole by [Entries.Count], allocating nothing: each
// entry must be a bin that holds at least its header map (an empty entry
// is invalid) and a valid map; any fault fails the whole frame. After
// Count succeeds, [Entries.Next] does not fail.
package wire

import (
	"errors"
	"fmt"

	"github.com/spmesh/spmesh"
)

// Version is the envelope version this package writes and reads.
const Version = 1

// Kind is the message kind, byte 2 of a plain frame.
type Kind byte

// Message kinds.
const (
	KindPublish  Kind = 1  // pub/sub message
	KindRequest  Kind = 2  // req/rep request
	KindReply    Kind = 3  // req/rep reply (an error reply carries keys 8, 9)
	KindPush     Kind = 4  // pipeline push (at most once)
	KindJob      Kind = 5  // pipeline job (at least once)
	KindAck      Kind = 6  // pipeline job ack (an error or nack carries keys 8, 9, 11)
	KindSurvey   Kind = 7  // survey question
	KindResponse Kind = 8  // survey answer
	KindBatch    Kind = 9  // pub/sub batch: several messages of one topic (see the package doc)
	KindTail     Kind = 10 // pub/sub heartbeat: a topic's last sequence number (see the package doc)
	KindInterest Kind = 11 // pub/sub, subscriber to publisher: its subscription prefixes (see the package doc)
	kindMax           = KindInterest
)

// Flags bits (header key 11).
const (
	FlagDeclined = 1 << 0
	FlagNack     = 1 << 1
)

// ID identifies a message; resends keep it.
type ID = spmesh.ID

// Msg is a decoded envelope. Body aliases the frame it was decoded from.
type Msg struct {
	Kind     Kind
	Topic    string
	ID       ID
	Time     int64
	Header   spmesh.Header
	Pub      uint64
	Seq      uint64
	Attempt  uint32
	Deadline int64
	Code     int64
	Err      string // non-empty: the remote handler failed
	From     string
	Flags    uint64
	Credit   uint32 // replies and acks: the replier's or worker's credit
	InFlight uint32 // acks: the jobs the worker was running, for every producer, when it sent this
	Frame    uint32 // interest: the largest frame the subscriber accepts (0: not said)
	Body     []byte
}

var (
	errShort = errors.New("truncated")
	errType  = errors.New("unexpected msgpack type")
	errRange = errors.New("integer out of range")
)

// notEnvelope describes a frame whose byte at i should be the version
// byte but is not: what a raw (non-envelope) SP message, such as a stock
// NNG REQ's "hello", gets back.
func notEnvelope(frame []byte, i int) error {
	c := frame[i]
	what := ""
	if c >= 0x20 && c < 0x7f {
		what = fmt.Sprintf(" %q", rune(c))
	}
	if c > Version && c < 0x20 {
		return fmt.Errorf("unsupported envelope version %d at byte %d, this peer reads version %d; see WIRE.md", c, i, Version)
	}
	if i == 0 {
		return fmt.Errorf("not an spmesh envelope: first byte 0x%02x%s, want version 0x%02x (or, on pub/sub frames, a topic and 0x00 first); see WIRE.md", c, what, Version)
	}
	return fmt.Errorf("not an spmesh envelope: byte %d (after the topic) is 0x%02x%s, want version 0x%02x; see WIRE.md", i, c, what, Version)
}

// decodeError is a frame that does not decode. It wraps [spmesh.ErrDecode]
// and carries [spmesh.CodeDecode], so that an error reply made from it
// tells the sender why, and errors.Is(err, spmesh.ErrDecode) holds there
// too.
type decodeError struct{ msg string }

func decodeErr(format string, args ...any) error {
	return &decodeError{msg: spmesh.ErrDecode.Error() + ": " + fmt.Sprintf(format, args...)}
}

func (e *decodeError) Error() string { return e.msg }
func (e *decodeError) Unwrap() error { return spmesh.ErrDecode }
func (e *decodeError) Code() int     { return spmesh.CodeDecode }

const (
	keyID = 1 + iota
	keyTime
	keyHeaders
	keyPub
	keySeq
	keyAttempt
	keyDeadline
	keyCode
	keyError
	keyFrom
	keyFlags
	keyCredit
	keyInFlight
	keyFrame
)

// ValidTopicByte reports whether c may appear in a topic.
func ValidTopicByte(c byte) bool { return c >= 0x20 && c != 0x7f }

// topical reports whether frames of kind k start with a topic.
func topical(k Kind) bool { return k == KindPublish || k == KindBatch || k == KindTail }

// AppendHeader appends the envelope of m, everything but the body, to dst.
// The caller appends the body after it. m.Topic must be valid (no byte below
// 0x20) when non-empty; it is written only for KindPublish, KindBatch and
// KindTail.
// For KindBatch the caller appends the entries (see [AppendEntry]).
func AppendHeader(dst []byte, m *Msg) []byte {
	return appendHeader(dst, m, 0)
}

// appendHeader is AppendHeader for a header map that the caller completes
// with extra more key/value pairs.
func appendHeader(dst []byte, m *Msg, extra int) []byte {
	if topical(m.Kind) {
		dst = append(dst, m.Topic...)
		dst = append(dst, 0)
	}
	dst = append(dst, Version, byte(m.Kind))
	n := 2 + extra // id, time
	if len(m.Header) > 0 {
		n++
	}
	if m.Pub != 0 {
		n++
	}
	if m.Seq != 0 {
		n++
	}
	if m.Attempt != 0 {
		n++
	}
	if m.Deadline != 0 {
		n++
	}
	if m.Code != 0 {
		n++
	}
	if m.Err != "" {
		n++
	}
	if m.From != "" {
		n++
	}
	if m.Flags != 0 {
		n++
	}
	if m.Credit != 0 {
		n++
	}
	if m.InFlight != 0 {
		n++
	}
	if m.Frame != 0 {
		n++
	}
	dst = appendMapLen(dst, n)
	dst = appendBin(append(dst, keyID), m.ID[:])
	dst = appendInt(append(dst, keyTime), m.Time)
	if len(m.Header) > 0 {
		dst = appendMapLen(append(dst, keyHeaders), len(m.Header))
		for k, v := range m.Header {
			dst = appendStr(appendStr(dst, k), v)
		}
	}
	if m.Pub != 0 {
		dst = appendUint(append(dst, keyPub), m.Pub)
	}
	if m.Seq != 0 {
		dst = appendUint(append(dst, keySeq), m.Seq)
	}
	if m.Attempt != 0 {
		dst = appendUint(append(dst, keyAttempt), uint64(m.Attempt))
	}
	if m.Deadline != 0 {
		dst = appendInt(append(dst, keyDeadline), m.Deadline)
	}
	if m.Code != 0 {
		dst = appendInt(append(dst, keyCode), m.Code)
	}
	if m.Err != "" {
		dst = appendStr(append(dst, keyError), m.Err)
	}
	if m.From != "" {
		dst = appendStr(append(dst, keyFrom), m.From)
	}
	if m.Flags != 0 {
		dst = appendUint(append(dst, keyFlags), m.Flags)
	}
	if m.Credit != 0 {
		dst = appendUint(append(dst, keyCredit), uint64(m.Credit))
	}
	if m.InFlight != 0 {
		dst = appendUint(append(dst, keyInFlight), uint64(m.InFlight))
	}
	if m.Frame != 0 {
		dst = appendUint(append(dst, keyFrame), uint64(m.Frame))
	}
	return dst
}

// Decode parses frame into m, replacing its contents. Errors wrap
// [spmesh.ErrDecode]. For a batch (KindBatch) m holds the batch header and
// m.Body the undecoded entries: read them with [Entries].
func Decode(frame []byte, m *Msg) error {
	if err := decode(frame, m, ""); err != nil {
		return decodeErr("envelope: %v", err)
	}
	return nil
}

// A Decoder decodes frames like [Decode], and reuses the previous frame's
// topic string when the next frame has the same topic, so that a stream of
// frames on one topic allocates no topic strings. The zero value is ready;
// a Decoder is not safe for concurrent use.
type Decoder struct{ topic string }

// Decode is [Decode] with the topic reused.
func (d *Decoder) Decode(frame []byte, m *Msg) error {
	if err := decode(frame, m, d.topic); err != nil {
		return decodeErr("envelope: %v", err)
	}
	if m.Topic != "" {
		d.topic = m.Topic
	}
	return nil
}

func decode(frame []byte, m *Msg, lastTopic string) error {
	*m = Msg{}
	r := reader{b: frame}
	if len(frame) > 0 && ValidTopicByte(frame[0]) {
		i := 0
		for i < len(frame) && frame[i] != 0 {
			if !ValidTopicByte(frame[i]) {
				return errors.New("bad topic byte")
			}
			i++
		}
		if i == len(frame) {
			// No 0x00 after printable bytes: most likely raw application
			// bytes (a stock NNG peer), not an unterminated topic.
			return notEnvelope(frame, 0)
		}
		if t := frame[:i]; string(t) == lastTopic {
			m.Topic = lastTopic
		} else {
			m.Topic = string(t)
		}
		r.i = i + 1
	}
	v, err := r.byte1()
	if err != nil {
		if len(frame) == 0 {
			return errors.New("empty frame, not an spmesh envelope; see WIRE.md")
		}
		return err
	}
	if v != Version {
		return notEnvelope(frame, r.i-1)
	}
	k, err := r.byte1()
	if err != nil {
		return err
	}
	m.Kind = Kind(k)
	if m.Kind == 0 || m.Kind > kindMax {
		return fmt.Errorf("unknown kind %d", k)
	}
	if topical(m.Kind) != (m.Topic != "") {
		return errors.New("topic present on a non-publish frame or missing on a publish frame")
	}
	return m.fields(&r)
}

// fields reads the header map at r into m; the rest of r's bytes are the body.
func (m *Msg) fields(r *reader) error { return m.readFields(r, true) }

// readFields is fields; with keep false it only checks the map, allocating
// nothing (no strings, no header map), and leaves m partly filled.
func (m *Msg) readFields(r *reader, keep bool) error {
	n, err := r.mapLen()
	if err != nil {
		return err
	}
	// Each pair takes at least two bytes: bound the count by what is left.
	if n > uint64(len(r.b)-r.i)/2 {
		return errShort
	}
	for ; n > 0; n-- {
		key, err := r.uint()
		if err != nil {
			return err
		}
		if err := m.field(r, key, keep); err != nil {
			return fmt.Errorf("key %d: %w", key, err)
		}
	}
	m.Body = r.b[r.i:len(r.b):len(r.b)]
	return nil
}

func (m *Msg) field(r *reader, key uint64, keep bool) error {
	var err error
	var u uint64
	var p []byte
	switch key {
	case keyID:
		if p, err = r.str(); err == nil {
			if len(p) != len(m.ID) {
				return errors.New("id must be 16 bytes")
			}
			copy(m.ID[:], p)
		}
	case keyTime:
		m.Time, err = r.int()
	case keyHeaders:
		return m.headers(r, keep)
	case keyPub:
		m.Pub, err = r.uint()
	case keySeq:
		m.Seq, err = r.uint()
	case keyAttempt:
		if u, err = r.uint(); err == nil {
			if u > 1<<32-1 {
				return errRange
			}
			m.Attempt = uint32(u)
		}
	case keyDeadline:
		m.Deadline, err = r.int()
	case keyCode:
		m.Code, err = r.int()
	case keyError:
		if p, err = r.str(); err == nil && keep {
			m.Err = string(p)
		}
	case keyFrom:
		if p, err = r.str(); err == nil && keep {
			m.From = string(p)
		}
	case keyFlags:
		m.Flags, err = r.uint()
	case keyCredit:
		if u, err = r.uint(); err == nil {
			if u > 1<<32-1 {
				return errRange
			}
			m.Credit = uint32(u)
		}
	case keyInFlight:
		if u, err = r.uint(); err == nil {
			if u > 1<<32-1 {
				return errRange
			}
			m.InFlight = uint32(u)
		}
	case keyFrame:
		if u, err = r.uint(); err == nil {
			if u > 1<<32-1 {
				return errRange
			}
			m.Frame = uint32(u)
		}
	default:
		err = r.skip(8)
	}
	return err
}

// MaxHeaders is the most user headers (key 3 pairs) a message may carry;
// a frame with more fails to decode. Like a web server's limit on request
// header fields, it keeps what a message's metadata costs the receiver
// (a map entry and two strings per pair, about 20 times the pair's bytes)
// a small multiple of what it is allowed to be, whatever the frame size.
const MaxHeaders = 1024

// headerHint bounds the size hint of a header map: the map grows with the
// pairs actually read, so a count claim (or a run of duplicate keys) costs
// no more than the pairs it brings.
const headerHint = 16

func (m *Msg) headers(r *reader, keep bool) error {
	n, err := r.mapLen()
	if err != nil {
		return err
	}
	// Each pair takes at least two bytes: bound the map by what the frame holds.
	if n > uint64(len(r.b)-r.i)/2 {
		return errShort
	}
	if n == 0 {
		return nil
	}
	if n > MaxHeaders {
		return fmt.Errorf("%d user headers, limit %d", n, MaxHeaders)
	}
	// Check every pair before allocating anything.
	chk := *r
	for i := n; i > 0; i-- {
		if _, err := chk.str(); err != nil {
			return err
		}
		if _, err := chk.str(); err != nil {
			return err
		}
	}
	if !keep {
		r.i = chk.i
		return nil
	}
	m.Header = make(spmesh.Header, min(n, headerHint))
	for ; n > 0; n-- {
		k, _ := r.str()
		v, _ := r.str()
		m.Header[string(k)] = string(v)
	}
	return nil
}

// MaxInterest bounds the prefixes of an interest frame.
const MaxInterest = 1024

// maxPrefix bounds one prefix of an interest frame.
const maxPrefix = 1024

// AppendInterest appends an interest frame announcing prefixes to dst,
// and frame, the largest frame the subscriber accepts (key 14; 0 leaves the
// header map empty).
func AppendInterest(dst []byte, frame uint32, prefixes [][]byte) []byte {
	dst = append(dst, Version, byte(KindInterest))
	if frame == 0 {
		dst = append(dst, 0x80)
	} else {
		dst = appendUint(append(dst, 0x81, keyFrame), uint64(frame))
	}
	for _, p := range prefixes {
		dst = appendBin(dst, p)
	}
	return dst
}

// ParseInterest returns the prefixes in body, the body of a decoded
// interest frame (they alias it). It checks the whole body, and the
// limits, before allocating the slice, sized by the prefixes read.
func ParseInterest(body []byte) ([][]byte, error) {
	r := reader{b: body}
	n := 0
	for r.i < len(r.b) {
		p, err := r.bin()
		if err != nil {
			return nil, decodeErr("interest: %v", err)
		}
		if len(p) > maxPrefix {
			return nil, decodeErr("interest: prefix of %d bytes, over %d", len(p), maxPrefix)
		}
		if n++; n > MaxInterest {
			return nil, decodeErr("interest: over %d prefixes", MaxInterest)
		}
	}
	out := make([][]byte, 0, n)
	r.i = 0
	for r.i < len(r.b) {
		p, _ := r.bin()
		out = append(out, p)
	}
	return out, nil
}
