package wire

import (
	"encoding/binary"
	"math"

	"github.com/spmesh/spmesh/internal/mpcheck"
)

// A minimal msgpack writer and reader for the envelope header: no reflection,
// no allocation on the write side, bounds-checked on the read side.

func appendMapLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xde, byte(n>>8), byte(n))
	default:
		return append(b, 0xdf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v < 128:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return append(b, 0xcd, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(b, 0xce, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
	}
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
		return append(b, 0xd1, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		return append(b, 0xd2, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
	}
}

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xda, byte(n>>8), byte(n))
	default:
		b = append(b, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}

func appendBin(b []byte, p []byte) []byte {
	n := len(p)
	switch {
	case n <= math.MaxUint8:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xc5, byte(n>>8), byte(n))
	default:
		b = append(b, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, p...)
}

// reader decodes msgpack values from b, never reading past its end.
type reader struct {
	b []byte
	i int
}

func (r *reader) byte1() (byte, error) {
	if r.i >= len(r.b) {
		return 0, errShort
	}
	c := r.b[r.i]
	r.i++
	return c, nil
}

func (r *reader) take(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)-r.i) {
		return nil, errShort
	}
	p := r.b[r.i : r.i+int(n)]
	r.i += int(n)
	return p, nil
}

func (r *reader) be(n int) (uint64, error) {
	p, err := r.take(uint64(n))
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range p {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

func (r *reader) mapLen() (uint64, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c&0xf0 == 0x80:
		return uint64(c & 0x0f), nil
	case c == 0xde:
		return r.be(2)
	case c == 0xdf:
		return r.be(4)
	}
	return 0, errType
}

// int reads any msgpack integer as int64 (uint64 values above MaxInt64 fail).
func (r *reader) int() (int64, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c < 0x80:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	}
	var v uint64
	switch c {
	case 0xcc, 0xcd, 0xce, 0xcf:
		v, err = r.be(1 << (c - 0xcc))
		if err == nil && v > math.MaxInt64 {
			err = errRange
		}
		return int64(v), err
	case 0xd0:
		v, err = r.be(1)
		return int64(int8(v)), err
	case 0xd1:
		v, err = r.be(2)
		return int64(int16(v)), err
	case 0xd2:
		v, err = r.be(4)
		return int64(int32(v)), err
	case 0xd3:
		v, err = r.be(8)
		return int64(v), err
	}
	return 0, errType
}

// uint reads a non-negative msgpack integer.
func (r *reader) uint() (uint64, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c < 0x80:
		return uint64(c), nil
	case c >= 0xcc && c <= 0xcf:
		return r.be(1 << (c - 0xcc))
	}
	return 0, errType
}

// str reads a msgpack str (or bin) and returns a slice of the frame.
func (r *reader) str() ([]byte, error) { return r.bytes(true) }

// bytes reads a msgpack bin, or with str a str too, and returns a slice of
// the frame.
func (r *reader) bytes(str bool) ([]byte, error) {
	c, err := r.byte1()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case str && c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == 0xc4, str && c == 0xd9:
		n, err = r.be(1)
	case c == 0xc5, str && c == 0xda:
		n, err = r.be(2)
	case c == 0xc6, str && c == 0xdb:
		n, err = r.be(4)
	default:
		return nil, errType
	}
	if err != nil {
		return nil, err
	}
	return r.take(n)
}

// skip skips one value of any type, nesting at most depth levels (the
// checks of mpcheck: every claim fits in the bytes left).
func (r *reader) skip(depth int) error {
	n, err := mpcheck.Skip(r.b[r.i:], depth)
	r.i += n
	return err
}
