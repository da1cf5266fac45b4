// Package mpcheck validates msgpack in one pass without decoding it, so that
// a decoder fed the bytes afterwards allocates only what the bytes hold.
//
// [Check] accepts b when it holds exactly one well-formed msgpack value:
// every str, bin and ext length fits in the bytes that remain, every array
// and map count fits in them at one byte per element (a map pair counts as
// two elements), the counts still open at any point fit in the bytes that
// remain (a claim cannot borrow bytes that an enclosing container's
// elements need), arrays and maps nest at most maxDepth deep, no byte is
// the never-used code 0xc1, a timestamp (ext -1) has 4, 8 or 12 bytes, an
// ext other than a timestamp whose data starts as a map holds exactly one
// such valid map (msgpack decodes it as that map into a map type), and
// nothing follows the value.
//
// After Check, the number of elements of all containers together is at
// most len(b), so a decoder allocates at most len(b) elements (each of the
// size of the type decoded into), plus the strings and bytes copied out.
//
// Check allocates nothing for values nested up to 64 deep; deeper ones
// cost 8 bytes per level of the deepest path, at most 8*maxDepth.
package mpcheck

import (
	"errors"
	"fmt"
)

// DefaultMaxDepth is the nesting limit used by spmesh's msgpack codec
// unless configured otherwise.
const DefaultMaxDepth = 256

// Error describes why bytes were rejected.
type Error struct {
	Offset int    // where the offending value starts
	Reason string // what is wrong
}

func (e *Error) Error() string { return fmt.Sprintf("msgpack at byte %d: %s", e.Offset, e.Reason) }

// errHead: b ends inside a value's header.
var errHead = errors.New("truncated header")

func fail(off int, format string, args ...any) error {
	return &Error{Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// Check validates that b holds exactly one msgpack value within the limits
// described in the package doc. Errors are *Error.
func Check(b []byte, maxDepth int) error {
	_, err := CheckExt(b, maxDepth)
	return err
}

// CheckExt is [Check] that also reports whether b holds an ext (a
// timestamp included) anywhere, outside str and bin payloads: without
// one, no decoder can read an ext as something else.
func CheckExt(b []byte, maxDepth int) (hasExt bool, err error) {
	n, ext, err := skip(b, maxDepth)
	if err != nil {
		return false, err
	}
	if n != len(b) {
		return false, fail(n, "%d bytes of trailing garbage after the value", len(b)-n)
	}
	return ext, nil
}

// Skip validates the first msgpack value in b like [Check], and returns its
// length; bytes after it are not looked at.
func Skip(b []byte, maxDepth int) (int, error) {
	n, _, err := skip(b, maxDepth)
	return n, err
}

func skip(b []byte, maxDepth int) (int, bool, error) {
	hasExt := false
	var buf [64]uint64
	stk := buf[:0]     // elements still to read in each open container
	var pending uint64 // sum of stk
	i := 0
	for {
		if i >= len(b) {
			return i, false, fail(i, "truncated: %d more values expected", pending+1)
		}
		start := i
		c := b[i]
		var body, elems uint64
		container := false
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
			i++
		case c&0xe0 == 0xa0: // fixstr
			i++
			body = uint64(c & 0x1f)
		case c&0xf0 == 0x90: // fixarray
			i++
			elems, container = uint64(c&0x0f), true
		case c&0xf0 == 0x80: // fixmap
			i++
			elems, container = 2*uint64(c&0x0f), true
		default:
			h, bd, el, ct, err := head(b, i)
			if err == errHead {
				return start, false, fail(start, "truncated header")
			}
			if err != nil {
				return start, false, err
			}
			i += h
			body, elems, container = bd, el, ct
		}
		if body > uint64(len(b)-i) {
			return start, false, fail(start, "length %d, only %d bytes remain", body, len(b)-i)
		}
		if c >= 0xc7 && c <= 0xc9 || c >= 0xd4 && c <= 0xd8 {
			hasExt = true
			// msgpack decodes an ext as the map it holds when the target
			// is a map (its DecodeMapLen skips an ext header): a payload
			// that starts as a map must be exactly one valid map.
			// Timestamps are exempt (their bytes are a time, often
			// starting like a map): spmesh's codec refuses any ext where
			// the target type has a map (it needs the type; Check does
			// not know it).
			p, typ := b[i:i+int(body)], b[i-1] // ext 8/16/32: the header ends with the type
			if c >= 0xd4 {
				p, typ = p[1:], p[0] // a fixext's body starts with it
			}
			if int8(typ) != -1 && len(p) > 0 && (p[0]&0xf0 == 0x80 || p[0] == 0xde || p[0] == 0xdf) {
				if len(stk)+1 >= maxDepth {
					return start, false, fail(start, "nested deeper than %d", maxDepth)
				}
				if err := Check(p, maxDepth-len(stk)-1); err != nil {
					return start, false, fail(start, "ext holding a map: %v", err)
				}
			}
		}
		i += int(body)
		if len(stk) > 0 {
			stk[len(stk)-1]--
			pending--
		}
		if container {
			if len(stk) >= maxDepth {
				return start, false, fail(start, "nested deeper than %d", maxDepth)
			}
			if elems+pending > uint64(len(b)-i) {
				return start, false, fail(start, "count of %d elements, only %d bytes remain for %d", elems, len(b)-i, elems+pending)
			}
			stk = append(stk, elems)
			pending += elems
		}
		for len(stk) > 0 && stk[len(stk)-1] == 0 {
			stk = stk[:len(stk)-1]
		}
		if len(stk) == 0 {
			return i, hasExt, nil
		}
	}
}

// head decodes the header of the value at b[i] for the codes that are not
// fix* or single-byte: h is the header's length, body the bytes after it
// that belong to the value (payloads, fixed-size numbers), elems the
// elements that follow for arrays and maps (two per map pair).
func head(b []byte, i int) (h int, body, elems uint64, container bool, err error) {
	c := b[i]
	switch c {
	case 0xcc, 0xd0:
		return 1, 1, 0, false, nil
	case 0xcd, 0xd1:
		return 1, 2, 0, false, nil
	case 0xca, 0xce, 0xd2:
		return 1, 4, 0, false, nil
	case 0xcb, 0xcf, 0xd3:
		return 1, 8, 0, false, nil
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: type byte and data
		n := uint64(1) << (c - 0xd4)
		if i+1 < len(b) && int8(b[i+1]) == -1 && n != 4 && n != 8 {
			return 0, 0, 0, false, fail(i, "timestamp of %d bytes", n)
		}
		return 1, 1 + n, 0, false, nil
	case 0xc4, 0xd9: // bin8, str8
		n, err := be(b, i, 1)
		return 2, n, 0, false, err
	case 0xc5, 0xda:
		n, err := be(b, i, 2)
		return 3, n, 0, false, err
	case 0xc6, 0xdb:
		n, err := be(b, i, 4)
		return 5, n, 0, false, err
	case 0xc7, 0xc8, 0xc9: // ext 8, 16, 32: length, type byte, data
		w := 1 << (c - 0xc7)
		n, err := be(b, i, w)
		if err != nil {
			return 0, 0, 0, false, err
		}
		if i+1+w >= len(b) {
			return 0, 0, 0, false, errHead
		}
		if int8(b[i+1+w]) == -1 && n != 4 && n != 8 && n != 12 {
			return 0, 0, 0, false, fail(i, "timestamp of %d bytes", n)
		}
		return 2 + w, n, 0, false, nil
	case 0xdc:
		n, err := be(b, i, 2)
		return 3, 0, n, true, err
	case 0xdd:
		n, err := be(b, i, 4)
		return 5, 0, n, true, err
	case 0xde:
		n, err := be(b, i, 2)
		return 3, 0, 2 * n, true, err
	case 0xdf:
		n, err := be(b, i, 4)
		return 5, 0, 2 * n, true, err
	}
	return 0, 0, 0, false, fail(i, "invalid code 0x%02x", c)
}

// be reads the w-byte big-endian integer after the code at b[i], or fails
// with errHead.
func be(b []byte, i, w int) (uint64, error) {
	if len(b)-i-1 < w {
		return 0, errHead
	}
	var v uint64
	for _, c := range b[i+1 : i+1+w] {
		v = v<<8 | uint64(c)
	}
	return v, nil
}
