package spmesh

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/spmesh/spmesh/internal/mpcheck"
	"github.com/vmihailenco/msgpack/v5"
)

// Codec turns Go values into message bodies and back.
type Codec interface {
	// Name identifies the codec (e.g. "msgpack", "raw").
	Name() string
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer. It must not keep data.
	// data comes from the network: Unmarshal must not allocate more than
	// a small multiple of len(data) whatever the bytes claim (see
	// [CheckMsgpack]), and its errors should wrap [ErrDecode].
	Unmarshal(data []byte, v any) error
}

// AppendCodec is implemented by codecs that can encode straight into a
// caller's buffer; spmesh uses it on the send path to avoid a copy and an
// allocation per message.
type AppendCodec interface {
	Codec
	// AppendMarshal appends the encoding of v to dst.
	AppendMarshal(dst []byte, v any) ([]byte, error)
}

// Msgpack is the default codec: github.com/vmihailenco/msgpack/v5 with its
// default settings (struct fields by name, `msgpack` tags honoured), bounded
// for bytes from the network:
//
//   - Unmarshal first checks the bytes with [CheckMsgpack] at
//     [DefaultMsgpackDepth]: a length or count larger than the bytes that
//     remain, nesting deeper than the limit, a truncated value or bytes
//     after it fail with an error wrapping [ErrDecode] before msgpack
//     allocates anything. After the check, the elements of all arrays and
//     maps together number at most len(data), so decoding allocates at
//     most len(data) elements of the type decoded into, plus the strings
//     and bytes it copies out (see the trap below).
//   - Unmarshal then checks the body against v's type, when the body holds
//     an ext at all (a timestamp is one): an ext where the type decodes a
//     map fails with an error wrapping [ErrDecode] ("ext where a map is
//     expected at byte N"). msgpack would skip the ext's header and read
//     its payload as a map, so a 10-byte timestamp could claim 808 M pairs;
//     no msgpack encoder writes a Go map as an ext, and a timestamp at a
//     time.Time (or any) position is decoded as before. What v's type
//     decodes as a map is worked out once per type, following msgpack's
//     rules (tags, "-", embedded structs inlined or not, aliases, structs
//     from maps or arrays); for a type that reaches no map the check is
//     one lookup, and otherwise one pass over the body, allocating nothing.
//     Types with their own decoders (msgpack.CustomDecoder,
//     msgpack.Unmarshaler, encoding.BinaryUnmarshaler or TextUnmarshaler,
//     a map type with a registered ext decoder) are left to their own
//     code, which is theirs to guard, and so is what an interface already
//     holding a pointer inside v points to (Unmarshal into a fresh value).
//   - A panic inside msgpack while decoding (it has some: a key repeated
//     for an interface field in a struct panics in reflect) is returned as
//     an error wrapping [ErrDecode], so a peer's bytes cannot end the
//     goroutine that decodes them.
//   - Marshal and AppendMarshal return an error, instead of overflowing the
//     stack, for a value with a cycle through a map, slice or struct: every
//     64 KiB of output the encoder checks that its stack is no deeper than
//     the nesting limit allows (16 frames a level; msgpack uses 3 to 5).
//     Values whose encoding stays under 64 KiB are not checked (a receiver
//     refuses those nested too deeply); the check costs about a
//     microsecond per 64 KiB.
//
// Traps: one byte can stand for an element of any size, so decoding into a
// slice of large structs (e.g. []BigStruct from a body of nils) allocates
// len(data) times the struct's size, twice (see the package doc for
// figures): decode into small element types, or check len(data) first. A cycle only through pointers and interfaces,
// with no map, slice or struct on it (var x any; x = &x), writes nothing
// while msgpack recurses, so nothing catches it: msgpack overflows the
// stack and the process dies.
var Msgpack Codec = msgpackCodec{}

// DefaultMsgpackDepth is how deeply arrays and maps may nest in a body that
// [Msgpack] decodes.
const DefaultMsgpackDepth = mpcheck.DefaultMaxDepth

// MaxMsgpackDepth is the highest nesting limit [NewMsgpack] takes.
const MaxMsgpackDepth = 10000

// NewMsgpack returns the [Msgpack] codec with a nesting limit of maxDepth
// (from 1 to [MaxMsgpackDepth]) instead of [DefaultMsgpackDepth], for
// decoding and for the encoder's cycle guard. Give every peer the same
// limit. An out-of-range maxDepth fails with [ErrInvalidOption].
func NewMsgpack(maxDepth int) (Codec, error) {
	if maxDepth < 1 || maxDepth > MaxMsgpackDepth {
		return nil, fmt.Errorf("%w: msgpack max depth %d, want 1 to %d", ErrInvalidOption, maxDepth, MaxMsgpackDepth)
	}
	return msgpackCodec{depth: maxDepth}, nil
}

// CheckMsgpack reports whether data holds exactly one msgpack value that a
// decoder can take without allocating more than data holds: every str, bin
// and ext length and every array and map count (at one byte per element,
// two per map pair) fits in the bytes that remain, arrays and maps nest at
// most maxDepth deep (<= 0: [DefaultMsgpackDepth]), no byte is the unused
// code 0xc1, a timestamp has 4, 8 or 12 bytes and nothing follows the
// value. It reads data once and allocates nothing (for nesting up to 64
// deep). Errors wrap [ErrDecode].
//
// [Msgpack] calls it on every body before decoding. A custom codec that
// decodes msgpack with other settings (or another library) calls it first
// too; a codec for another format needs the same kind of check for it.
// CheckMsgpack does not know the type decoded into: a decoder that, like
// msgpack v5, reads an ext as a map where the type is a map needs the
// check [Msgpack] makes against the type (it holds every ext but a
// timestamp whose payload starts like a map to exactly one valid map, but
// a timestamp's bytes may claim anything).
func CheckMsgpack(data []byte, maxDepth int) error {
	if maxDepth <= 0 {
		maxDepth = DefaultMsgpackDepth
	}
	if err := mpcheck.Check(data, maxDepth); err != nil {
		return decodeErr("msgpack: " + err.Error())
	}
	return nil
}

// decodeError is what codecs return for a body they cannot decode. It
// wraps [ErrDecode] and carries [CodeDecode], so that a handler returning
// it (as a typed handler does for a body that does not decode) makes the
// caller's error satisfy errors.Is(err, ErrDecode) too.
type decodeError struct{ msg string }

func decodeErr(msg string) error { return &decodeError{msg: ErrDecode.Error() + ": " + msg} }

func (e *decodeError) Error() string { return e.msg }
func (e *decodeError) Unwrap() error { return ErrDecode }
func (e *decodeError) Code() int     { return CodeDecode }

// Raw is the codec for callers who bring their own encoding. Marshal accepts
// []byte, string and nil; Unmarshal accepts *[]byte (a copy) and *string.
var Raw Codec = rawCodec{}

type msgpackCodec struct {
	depth int // 0: DefaultMsgpackDepth
}

func (c msgpackCodec) maxDepth() int {
	if c.depth == 0 {
		return DefaultMsgpackDepth
	}
	return c.depth
}

func (msgpackCodec) Name() string { return "msgpack" }

func (c msgpackCodec) Marshal(v any) ([]byte, error) {
	b, err := c.AppendMarshal(nil, v)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (c msgpackCodec) Unmarshal(data []byte, v any) (err error) {
	defer func() {
		// msgpack panics on some bodies with some types (a key repeated
		// for an interface field: the second decode lands in the map the
		// first left there, which reflect cannot address); a peer's bytes
		// must not end the caller's goroutine.
		if p := recover(); p != nil {
			err = decodeErr(fmt.Sprintf("msgpack: cannot decode into %T: %v", v, p))
		}
	}()
	hasExt, err := mpcheck.CheckExt(data, c.maxDepth())
	if err != nil {
		return decodeErr("msgpack: " + err.Error())
	}
	if hasExt {
		if err := checkTyped(data, v); err != nil {
			return err
		}
	}
	if err := msgpack.Unmarshal(data, v); err != nil {
		return decodeErr("msgpack: " + err.Error())
	}
	return nil
}

// guardStep is how many bytes an encoding grows between two looks at the
// encoder's stack. Below it nothing is looked at: a value whose encoding
// stays under 64 KiB nests at most 64 Ki levels (every level writes at
// least a byte), far from what exhausts a goroutine's stack (1 GiB by
// default; msgpack uses a few frames, well under 16 KiB, a level).
const guardStep = 64 << 10

// appendWriter is where msgpack writes. Every guardStep bytes it counts
// the frames on the stack (runtime.Callers skipping the allowed number,
// which costs the depth of a normal stack, a microsecond or so) and fails
// the write when msgpack recurses deeper than its nesting limit allows
// (framesPerLevel a level, plus the caller's own frames): failing the
// write ends msgpack's recursion on a cycle.
//
// It also stops the encoding at limit bytes (for [LimitAppendCodec]): a
// write past it fails without copying anything, and over records the size
// it would have reached.
type appendWriter struct {
	b      []byte
	next   int // len(b) at which to look next
	frames int // stack frames allowed
	depth  int
	limit  int // most bytes b may hold
	over   int
	err    error
}

// errLimit fails the write that would pass appendWriter.limit.
var errLimit = errors.New("limit")

// framesPerLevel bounds the stack frames msgpack uses per level of
// nesting (measured: 3 to 5); callerFrames allows for the caller's stack.
const (
	framesPerLevel = 16
	callerFrames   = 1024
)

func (w *appendWriter) Write(p []byte) (int, error) {
	if len(w.b)+len(p) > w.limit {
		w.over = len(w.b) + len(p)
		return 0, errLimit
	}
	w.b = append(w.b, p...)
	if len(w.b) >= w.next {
		if err := w.guard(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// WriteByte spares msgpack its fallback, which allocates a byte slice per
// call.
func (w *appendWriter) WriteByte(c byte) error {
	if len(w.b) >= w.limit {
		w.over = len(w.b) + 1
		return errLimit
	}
	w.b = append(w.b, c)
	if len(w.b) >= w.next {
		return w.guard()
	}
	return nil
}

func (w *appendWriter) guard() error {
	if w.err == nil {
		w.next = len(w.b) + guardStep
		var pc [1]uintptr
		if runtime.Callers(w.frames, pc[:]) > 0 {
			w.err = fmt.Errorf("spmesh: msgpack: cannot encode a value nested deeper than %d (a cycle?)", w.depth)
		}
	}
	return w.err
}

type pooledEncoder struct {
	w   appendWriter
	enc *msgpack.Encoder
}

var encPool = sync.Pool{New: func() any {
	e := &pooledEncoder{}
	e.enc = msgpack.NewEncoder(&e.w)
	return e
}}

func (c msgpackCodec) AppendMarshal(dst []byte, v any) ([]byte, error) {
	return c.AppendMarshalLimit(dst, v, math.MaxInt)
}

// AppendMarshalLimit implements [LimitAppendCodec].
func (c msgpackCodec) AppendMarshalLimit(dst []byte, v any, limit int) ([]byte, error) {
	e := encPool.Get().(*pooledEncoder)
	w := &e.w
	w.depth = c.maxDepth()
	w.b, w.next, w.frames = dst, len(dst)+guardStep, framesPerLevel*w.depth+callerFrames
	w.limit, w.over = limit, 0
	err := e.enc.Encode(v)
	out, over := w.b, w.over
	w.b, w.err = nil, nil
	encPool.Put(e)
	if err != nil {
		if errors.Is(err, errLimit) {
			return dst, fmt.Errorf("%w: over %d bytes (at least %d), limit %d", ErrTooLarge, limit, over, limit)
		}
		return out[:len(dst)], err
	}
	return out, nil
}

type rawCodec struct{}

func (rawCodec) Name() string { return "raw" }

func (c rawCodec) Marshal(v any) ([]byte, error) { return c.AppendMarshal(nil, v) }

func (rawCodec) AppendMarshal(dst []byte, v any) ([]byte, error) {
	switch b := v.(type) {
	case []byte:
		return append(dst, b...), nil
	case string:
		return append(dst, b...), nil
	case nil:
		return dst, nil
	default:
		return dst, fmt.Errorf("spmesh: raw codec: cannot marshal %T (want []byte or string)", v)
	}
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	switch p := v.(type) {
	case *[]byte:
		*p = append((*p)[:0], data...)
	case *string:
		*p = string(data)
	default:
		return decodeErr(fmt.Sprintf("raw codec: cannot unmarshal into %T (want *[]byte or *string)", v))
	}
	return nil
}

// AppendMarshal encodes v with c, appending to dst; it uses
// [AppendCodec.AppendMarshal] when c has it.
func AppendMarshal(c Codec, dst []byte, v any) ([]byte, error) {
	if ac, ok := c.(AppendCodec); ok {
		return ac.AppendMarshal(dst, v)
	}
	b, err := c.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}
