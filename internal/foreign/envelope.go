package foreign

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Kinds (WIRE.md section 2).
const (
	KindPublish  = 1
	KindRequest  = 2
	KindReply    = 3
	KindPush     = 4
	KindJob      = 5
	KindAck      = 6
	KindSurvey   = 7
	KindResponse = 8
	KindBatch    = 9
	KindTail     = 10
	KindInterest = 11
)

// Flags (key 11).
const (
	FlagDeclined = 1 << 0
	FlagNack     = 1 << 1
)

// Envelope is one spmesh envelope, field by field of WIRE.md's header
// key table. Keys holds every key the frame carried (for "absent" checks).
type Envelope struct {
	Topic    string // kinds 1, 9, 10
	Kind     byte
	ID       [16]byte          // key 1
	Time     int64             // key 2
	Headers  map[string]string // key 3
	Pub      uint64            // key 4
	Seq      uint64            // key 5
	Attempt  uint64            // key 6
	Deadline int64             // key 7
	Code     int64             // key 8
	Err      string            // key 9
	From     string            // key 10
	Flags    uint64            // key 11
	Credit   uint64            // key 12
	InFlight uint64            // key 13
	Frame    uint64            // key 14
	Body     []byte            // what follows the map (a batch's entries)
	Keys     map[uint64]bool   // the keys present
}

func topicKind(k byte) bool { return k == KindPublish || k == KindBatch || k == KindTail }

// Append appends e as an envelope: the topic and 0x00 for pub/sub kinds,
// version 1, the kind, the header map (keys 1 and 2 always, the others
// when non-zero, as spmesh writes them), the body.
func (e *Envelope) Append(b []byte) []byte {
	if topicKind(e.Kind) {
		b = append(append(b, e.Topic...), 0)
	}
	b = append(b, 1, e.Kind)
	type kv struct {
		k uint64
		v func([]byte) []byte
	}
	pairs := []kv{
		{1, func(b []byte) []byte { return appendBin(b, e.ID[:]) }},
		{2, func(b []byte) []byte { return appendInt(b, e.Time) }},
	}
	if len(e.Headers) > 0 {
		pairs = append(pairs, kv{3, func(b []byte) []byte {
			b = appendMapLen(b, len(e.Headers))
			for k, v := range e.Headers {
				b = appendStr(appendStr(b, k), v)
			}
			return b
		}})
	}
	for _, u := range []struct {
		k uint64
		v uint64
	}{{4, e.Pub}, {5, e.Seq}, {6, e.Attempt}} {
		if u.v != 0 {
			v := u.v
			pairs = append(pairs, kv{u.k, func(b []byte) []byte { return appendUint(b, v) }})
		}
	}
	if e.Deadline != 0 {
		pairs = append(pairs, kv{7, func(b []byte) []byte { return appendInt(b, e.Deadline) }})
	}
	if e.Code != 0 {
		pairs = append(pairs, kv{8, func(b []byte) []byte { return appendInt(b, e.Code) }})
	}
	if e.Err != "" {
		pairs = append(pairs, kv{9, func(b []byte) []byte { return appendStr(b, e.Err) }})
	}
	if e.From != "" {
		pairs = append(pairs, kv{10, func(b []byte) []byte { return appendStr(b, e.From) }})
	}
	if e.Flags != 0 {
		pairs = append(pairs, kv{11, func(b []byte) []byte { return appendUint(b, e.Flags) }})
	}
	if e.Credit != 0 {
		pairs = append(pairs, kv{12, func(b []byte) []byte { return appendUint(b, e.Credit) }})
	}
	if e.InFlight != 0 {
		pairs = append(pairs, kv{13, func(b []byte) []byte { return appendUint(b, e.InFlight) }})
	}
	if e.Frame != 0 {
		pairs = append(pairs, kv{14, func(b []byte) []byte { return appendUint(b, e.Frame) }})
	}
	b = appendMapLen(b, len(pairs))
	for _, p := range pairs {
		b = p.v(appendUint(b, p.k))
	}
	return append(b, e.Body...)
}

// Parse reads one envelope. A frame whose first byte is a topic byte
// (0x20 and up, not 0x7f) starts with a topic ended by 0x00.
func Parse(frame []byte) (*Envelope, error) {
	e := &Envelope{}
	r := &reader{b: frame}
	hasTopic := false
	switch {
	case len(frame) > 0 && frame[0] == 0: // the empty topic
		hasTopic, r.i = true, 1
	case len(frame) > 0 && frame[0] >= 0x20 && frame[0] != 0x7f:
		i := 0
		for i < len(frame) && frame[i] != 0 {
			if frame[i] < 0x20 || frame[i] == 0x7f {
				return nil, fmt.Errorf("bad topic byte 0x%02x at %d", frame[i], i)
			}
			i++
		}
		if i == len(frame) {
			return nil, errors.New("topic not ended by 0x00")
		}
		e.Topic, hasTopic, r.i = string(frame[:i]), true, i+1
	}
	v, err := r.byte1()
	if err != nil {
		return nil, err
	}
	if v != 1 {
		return nil, fmt.Errorf("version %d, want 1", v)
	}
	if e.Kind, err = r.byte1(); err != nil {
		return nil, err
	}
	if topicKind(e.Kind) != hasTopic {
		return nil, fmt.Errorf("kind %d: topic present %v, want %v", e.Kind, hasTopic, topicKind(e.Kind))
	}
	if err := r.header(e); err != nil {
		return nil, err
	}
	e.Body = frame[r.i:]
	return e, nil
}

// header reads the header map into e.
func (r *reader) header(e *Envelope) error {
	n, err := r.mapLen()
	if err != nil {
		return err
	}
	e.Keys = map[uint64]bool{}
	for range n {
		k, err := r.uint()
		if err != nil {
			return fmt.Errorf("key: %w", err)
		}
		e.Keys[k] = true
		switch k {
		case 1:
			var id []byte
			if t, _ := r.peek(); t >= 0xa0 && t <= 0xbf || t == 0xd9 {
				id, err = r.str()
			} else {
				id, err = r.bin()
			}
			if err == nil && len(id) != 16 {
				err = fmt.Errorf("id of %d bytes, want 16", len(id))
			}
			copy(e.ID[:], id)
		case 2:
			e.Time, err = r.int()
		case 3:
			var m uint64
			if m, err = r.mapLen(); err != nil {
				break
			}
			e.Headers = map[string]string{}
			for range m {
				var hk, hv []byte
				if hk, err = r.str(); err != nil {
					break
				}
				if hv, err = r.str(); err != nil {
					break
				}
				e.Headers[string(hk)] = string(hv)
			}
		case 4:
			e.Pub, err = r.uint()
		case 5:
			e.Seq, err = r.uint()
		case 6:
			e.Attempt, err = r.uint()
		case 7:
			e.Deadline, err = r.int()
		case 8:
			e.Code, err = r.int()
		case 9, 10:
			var s []byte
			s, err = r.str()
			if k == 9 {
				e.Err = string(s)
			} else {
				e.From = string(s)
			}
		case 11:
			e.Flags, err = r.uint()
		case 12:
			e.Credit, err = r.uint()
		case 13:
			e.InFlight, err = r.uint()
		case 14:
			e.Frame, err = r.uint()
		default:
			err = r.skip(0)
		}
		if err != nil {
			return fmt.Errorf("key %d: %w", k, err)
		}
	}
	return nil
}

// Entries unpacks a batch (kind 9) by WIRE.md's rules: each entry a bin
// holding the entry's own header map then its body; entry i has the batch
// id with its last 8 bytes plus i, the batch seq plus i, the batch's other
// keys but not its headers (key 3), then its own map's keys.
func Entries(b *Envelope) ([]*Envelope, error) {
	if b.Kind != KindBatch {
		return nil, fmt.Errorf("kind %d, not a batch", b.Kind)
	}
	r := &reader{b: b.Body}
	var out []*Envelope
	for i := uint64(0); r.i < len(r.b); i++ {
		raw, err := r.bin()
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if len(raw) == 0 {
			return nil, fmt.Errorf("entry %d empty", i)
		}
		e := *b
		e.Kind, e.Headers, e.Keys = KindPublish, nil, nil
		binary.BigEndian.PutUint64(e.ID[8:], binary.BigEndian.Uint64(b.ID[8:])+i)
		e.Seq = b.Seq + i
		er := &reader{b: raw}
		if err := er.header(&e); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		e.Body = raw[er.i:]
		out = append(out, &e)
	}
	if len(out) == 0 {
		return nil, errors.New("batch without entries")
	}
	return out, nil
}

// AppendInterest appends an interest frame (kind 11): version, kind, a map
// holding key 14 (the largest frame accepted; an empty map when frame is
// 0), then each prefix as a bin.
func AppendInterest(b []byte, frame uint64, prefixes ...string) []byte {
	b = append(b, 1, KindInterest)
	if frame == 0 {
		b = append(b, 0x80)
	} else {
		b = appendUint(append(b, 0x81, 14), frame)
	}
	for _, p := range prefixes {
		b = appendBin(b, []byte(p))
	}
	return b
}

// Prefixes reads an interest frame's (kind 11) prefixes: the bins after
// its map.
func Prefixes(e *Envelope) ([]string, error) {
	if e.Kind != KindInterest {
		return nil, fmt.Errorf("kind %d, not interest", e.Kind)
	}
	r := &reader{b: e.Body}
	var out []string
	for r.i < len(r.b) {
		p, err := r.bin()
		if err != nil {
			return nil, fmt.Errorf("prefix %d: %w", len(out), err)
		}
		out = append(out, string(p))
	}
	return out, nil
}

// AppendEntry appends one batch entry: a bin holding the entry's own
// header map (keys 3, or any key overriding the batch's) then its body.
func AppendEntry(b []byte, headers map[string]string, body []byte) []byte {
	var e []byte
	if len(headers) == 0 {
		e = append(e, 0x80)
	} else {
		e = appendMapLen(e, 1)
		e = appendMapLen(appendUint(e, 3), len(headers))
		for k, v := range headers {
			e = appendStr(appendStr(e, k), v)
		}
	}
	return appendBin(b, append(e, body...))
}

// msgpack, the little of it that WIRE.md uses.

func appendMapLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n < 1<<16:
		return binary.BigEndian.AppendUint16(append(b, 0xde), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdf), uint32(n))
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v < 128:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return appendUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

func appendBin(b, v []byte) []byte {
	switch {
	case len(v) <= math.MaxUint8:
		b = append(b, 0xc4, byte(len(v)))
	case len(v) <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xc5), uint16(len(v)))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(len(v)))
	}
	return append(b, v...)
}

func appendStr(b []byte, s string) []byte {
	switch {
	case len(s) < 32:
		b = append(b, 0xa0|byte(len(s)))
	case len(s) <= math.MaxUint8:
		b = append(b, 0xd9, byte(len(s)))
	case len(s) <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(len(s)))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(len(s)))
	}
	return append(b, s...)
}

var errShort = errors.New("truncated")

type reader struct {
	b []byte
	i int
}

func (r *reader) peek() (byte, error) {
	if r.i >= len(r.b) {
		return 0, errShort
	}
	return r.b[r.i], nil
}

func (r *reader) byte1() (byte, error) {
	c, err := r.peek()
	if err == nil {
		r.i++
	}
	return c, err
}

// n takes the next n bytes, checked against what is left.
func (r *reader) n(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)-r.i) {
		return nil, errShort
	}
	s := r.b[r.i : r.i+int(n)]
	r.i += int(n)
	return s, nil
}

func (r *reader) be(n int) (uint64, error) {
	s, err := r.n(uint64(n))
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range s {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

func (r *reader) mapLen() (uint64, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == 0x80:
		n = uint64(c & 0x0f)
	case c == 0xde:
		n, err = r.be(2)
	case c == 0xdf:
		n, err = r.be(4)
	default:
		return 0, fmt.Errorf("type 0x%02x, want a map", c)
	}
	if err == nil && n > uint64(len(r.b)-r.i)/2 { // a pair takes 2 bytes at least
		err = errShort
	}
	return n, err
}

// uint reads a non-negative integer, in any msgpack integer encoding, up
// to the full 64 bits (a publisher id is random).
func (r *reader) uint() (uint64, error) {
	if c, err := r.peek(); err == nil && c == 0xcf {
		r.i++
		return r.be(8)
	}
	v, err := r.int()
	if err == nil && v < 0 {
		err = fmt.Errorf("negative %d, want unsigned", v)
	}
	return uint64(v), err
}

// int reads any msgpack integer into an int64 (uint 64 above MaxInt64 is
// refused: WIRE.md's values never reach it).
func (r *reader) int() (int64, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	var u uint64
	switch {
	case c < 0x80:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c >= 0xcc && c <= 0xcf:
		u, err = r.be(1 << (c - 0xcc))
		if err == nil && u > math.MaxInt64 {
			err = fmt.Errorf("uint %d out of range", u)
		}
		return int64(u), err
	case c >= 0xd0 && c <= 0xd3:
		n := 1 << (c - 0xd0)
		u, err = r.be(n)
		shift := 64 - 8*n
		return int64(u<<shift) >> shift, err
	}
	return 0, fmt.Errorf("type 0x%02x, want an integer", c)
}

func (r *reader) bin() ([]byte, error) {
	c, err := r.byte1()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch c {
	case 0xc4:
		n, err = r.be(1)
	case 0xc5:
		n, err = r.be(2)
	case 0xc6:
		n, err = r.be(4)
	default:
		return nil, fmt.Errorf("type 0x%02x, want bin", c)
	}
	if err != nil {
		return nil, err
	}
	return r.n(n)
}

func (r *reader) str() ([]byte, error) {
	c, err := r.byte1()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n = uint64(c & 0x1f)
	case c == 0xd9:
		n, err = r.be(1)
	case c == 0xda:
		n, err = r.be(2)
	case c == 0xdb:
		n, err = r.be(4)
	default:
		return nil, fmt.Errorf("type 0x%02x, want str", c)
	}
	if err != nil {
		return nil, err
	}
	return r.n(n)
}

// skip skips one value of an unknown key, at most 8 levels deep.
func (r *reader) skip(depth int) error {
	if depth > 8 {
		return errors.New("nesting too deep")
	}
	c, err := r.peek()
	if err != nil {
		return err
	}
	switch {
	case c == 0xcf: // any uint 64, even above MaxInt64
		_, err = r.n(9)
		return err
	case c < 0x80 || c >= 0xe0 || c >= 0xcc && c <= 0xd3:
		_, err = r.int()
		return err
	case c == 0xc0 || c == 0xc2 || c == 0xc3:
		r.i++
		return nil
	case c == 0xca:
		_, err = r.n(5)
		return err
	case c == 0xcb:
		_, err = r.n(9)
		return err
	case c >= 0xa0 && c <= 0xbf || c >= 0xd9 && c <= 0xdb:
		_, err = r.str()
		return err
	case c >= 0xc4 && c <= 0xc6:
		_, err = r.bin()
		return err
	case c&0xf0 == 0x80 || c == 0xde || c == 0xdf:
		n, err := r.mapLen()
		for i := uint64(0); err == nil && i < 2*n; i++ {
			err = r.skip(depth + 1)
		}
		return err
	case c&0xf0 == 0x90 || c == 0xdc || c == 0xdd:
		r.i++
		var n uint64
		switch c {
		case 0xdc:
			n, err = r.be(2)
		case 0xdd:
			n, err = r.be(4)
		default:
			n = uint64(c & 0x0f)
		}
		if err == nil && n > uint64(len(r.b)-r.i) {
			err = errShort
		}
		for i := uint64(0); err == nil && i < n; i++ {
			err = r.skip(depth + 1)
		}
		return err
	}
	return fmt.Errorf("type 0x%02x not expected in an envelope", c)
}
