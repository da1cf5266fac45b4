package mpcheck

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func nested(depth int) []byte {
	return append(bytes.Repeat([]byte{0x91}, depth-1), 0x90)
}

func TestCheckAccepts(t *testing.T) {
	type item struct {
		A int
		B string
		C []float64
		D map[string]any
		E []byte
	}
	for _, v := range []any{
		nil, true, false, 0, -1, 127, 128, -33, 1 << 40, -1 << 40, uint64(1 << 63), 1.5, float32(2.5),
		"", "x", strings.Repeat("s", 40), strings.Repeat("s", 300), strings.Repeat("s", 70000),
		[]byte{}, []byte("abc"), bytes.Repeat([]byte{1}, 300), bytes.Repeat([]byte{1}, 70000),
		[]any{}, []any{1, "a", nil, []any{map[string]any{"k": []any{}}}}, make([]int, 20), make([]int, 70000),
		map[string]any{}, map[string]int{"a": 1, "b": 2}, map[int]string{1: "x"},
		item{A: 1, B: "b", C: []float64{1, 2}, D: map[string]any{"x": []any{1}}, E: []byte("e")},
		[]item{{}, {A: 2}},
	} {
		b := mustMarshal(t, v)
		if err := Check(b, DefaultMaxDepth); err != nil {
			t.Errorf("Check(%T %x...): got %v, want nil", v, b[:min(len(b), 16)], err)
		}
	}
	// Timestamps and other exts, as msgpack writes them.
	for _, b := range [][]byte{
		{0xd6, 0xff, 0, 0, 0, 1},
		{0xd7, 0xff, 0, 0, 0, 0, 0, 0, 0, 1},
		{0xc7, 12, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
		{0xd4, 5, 0}, {0xd8, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		{0xc7, 0, 5}, {0xc8, 0, 1, 5, 9}, {0xc9, 0, 0, 0, 1, 5, 9},
		// An ext holding exactly one valid map, and one holding a non-map.
		{0xc7, 3, 5, 0x81, 1, 2}, {0xd6, 5, 0x81, 0xa1, 'k', 1}, {0xd4, 5, 0x80}, {0xc7, 2, 5, 0x91, 1},
		// A timestamp whose bytes start like a map (a known trap: SECURITY.md).
		{0xd6, 0xff, 0xdf, 0x30, 0x30, 0x30},
	} {
		if err := Check(b, DefaultMaxDepth); err != nil {
			t.Errorf("Check(%x): got %v, want nil", b, err)
		}
	}
	if err := Check(nested(DefaultMaxDepth), DefaultMaxDepth); err != nil {
		t.Errorf("nesting at the limit: got %v, want nil", err)
	}
}

func TestCheckRejects(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"array32 of 2^32-1", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}, "count of 4294967295"},
		{"map32 of 2^32-1", []byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0}, "count of 8589934590"},
		{"array16 one short", []byte{0xdc, 0, 3, 1, 2}, "count of 3"},
		{"map needs two bytes a pair", []byte{0x82, 1, 2, 3}, "count of 4"},
		{"str32 of 4 GiB", []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}, "length 4294967295"},
		{"bin32 of 4 GiB", []byte{0xc6, 0xff, 0xff, 0xff, 0xff, 'a'}, "length 4294967295"},
		{"ext32 of 4 GiB", []byte{0xc9, 0xff, 0xff, 0xff, 0xff, 1, 'a'}, "length 4294967295"},
		{"fixstr short", []byte{0xa3, 'a'}, "length 3"},
		{"float64 short", []byte{0xcb, 0, 0}, "length 8"},
		{"header short", []byte{0xdd, 0, 0}, "truncated header"},
		{"ext header short", []byte{0xc7, 1}, "truncated header"},
		{"nested claims share the bytes", []byte{0x92, 0xdc, 0, 3, 1, 2, 3}, "count of 3"},
		{"too deep", nested(DefaultMaxDepth + 1), "nested deeper than 256"},
		{"10 M nesting", bytes.Repeat([]byte{0x91}, 10<<20), "nested deeper than 256"},
		{"0xc1", []byte{0x92, 1, 0xc1}, "invalid code 0xc1"},
		{"trailing", []byte{1, 2}, "trailing garbage"},
		{"truncated array", []byte{0x93, 1, 2}, "count of 3"},
		{"truncated in nested", []byte{0x92, 0x91, 0x92, 1}, "count of 2"},
		{"timestamp of 2 bytes", []byte{0xd5, 0xff, 0, 0}, "timestamp of 2"},
		{"timestamp of 5 bytes", []byte{0xc7, 5, 0xff, 0, 0, 0, 0, 0}, "timestamp of 5"},
		// msgpack decodes an ext as the map it holds into a map type: the
		// map's claim is checked (808 M pairs in 8 bytes, found by FuzzReplier).
		{"ext holding a map32 claim", []byte{0xc7, 5, 0x30, 0xdf, 0x30, 0x30, 0x30, 0x30}, "ext holding a map"},
		{"fixext holding a map16 claim", []byte{0xd6, 1, 0xde, 0xff, 0xff, 0}, "ext holding a map"},
		{"ext holding a map and more", []byte{0xc7, 3, 5, 0x80, 1, 2}, "ext holding a map"},
		{"ext holding a truncated map", append([]byte{0xc9, 0, 0, 1, 0, 5}, append(bytes.Repeat([]byte{0x81, 0xc0}, 128), 0xc0)...), "ext holding a map"},
	} {
		err := Check(c.b, DefaultMaxDepth)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an *Error containing %q", c.name, err, c.want)
		}
	}
}

func TestSkip(t *testing.T) {
	b := append(mustMarshal(t, []any{1, "ab", map[string]int{"x": 1}}), 0xc1, 0xc1)
	n, err := Skip(b, 8)
	if err != nil || n != len(b)-2 {
		t.Fatalf("Skip: got %d, %v; want %d, nil", n, err, len(b)-2)
	}
}

func TestCheckAllocs(t *testing.T) {
	b := mustMarshal(t, map[string]any{"a": []any{1, 2, map[string]any{"b": "c"}}, "d": []byte("xyz")})
	deep := nested(64)
	if n := testing.AllocsPerRun(100, func() {
		if Check(b, DefaultMaxDepth) != nil || Check(deep, DefaultMaxDepth) != nil {
			t.Fatal("rejected")
		}
	}); n != 0 {
		t.Errorf("Check: got %v allocs, want 0", n)
	}
}

// FuzzCheck is differential: what Check accepts, msgpack decodes into any
// (or fails only for reasons Check does not judge: what an ext type means,
// type, a map key msgpack cannot use), and what msgpack decodes completely
// without error, Check accepts unless it breaks a limit.
func FuzzCheck(f *testing.F) {
	for _, v := range []any{nil, 1, "abc", []any{1, []any{2}}, map[string]any{"a": 1.5, "b": []byte("x")}} {
		f.Add(mustMarshal(f, v))
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xd6, 0xff, 0, 0, 0, 1})
	f.Add([]byte{0xc7, 12, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		const depth = 32
		cerr := Check(b, depth)
		var e *Error
		if errors.As(cerr, &e) && (strings.HasPrefix(e.Reason, "count of") || strings.HasPrefix(e.Reason, "length") ||
			strings.HasPrefix(e.Reason, "nested deeper")) {
			// A claim larger than the bytes that remain: msgpack cannot
			// decode it either (it would fail at the end of the bytes),
			// but may first allocate what the claim asks for, which is
			// why Check exists. Too deep: over the limit by design.
			return
		}
		var v any
		d := msgpack.NewDecoder(bytes.NewReader(b))
		merr := d.Decode(&v)
		if merr == nil && d.Buffered().(*bytes.Reader).Len() != 0 {
			merr = errors.New("trailing bytes")
		}
		switch {
		case cerr == nil && merr != nil:
			msg := merr.Error()
			if strings.Contains(msg, "ext") || strings.Contains(msg, "interned") || strings.Contains(msg, "invalid code") && strings.Contains(msg, "decoding string/bytes length") ||
				strings.Contains(msg, "unhashable") || strings.Contains(msg, "map key") {
				return
			}
			t.Fatalf("Check accepted %x, msgpack failed: %v", b, merr)
		case cerr != nil && merr == nil:
			t.Fatalf("Check rejected %x (%v), msgpack decoded %v", b, cerr, v)
		case cerr == nil && merr == nil:
			if ext, _ := CheckExt(b, depth); !ext && holdsTime(v) {
				t.Fatalf("CheckExt found no ext in %x, msgpack decoded a time from it: %v", b, v)
			}
		}
	})
}

// holdsTime reports whether a value decoded into any holds a time (the
// only ext msgpack decodes without a registration).
func holdsTime(v any) bool {
	switch v := v.(type) {
	case time.Time:
		return true
	case []any:
		for _, e := range v {
			if holdsTime(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range v {
			if holdsTime(e) {
				return true
			}
		}
	}
	return false
}

func TestCheckExt(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		ext  bool
	}{
		{"scalar", []byte{0x01}, false},
		{"ext bytes inside a str", []byte{0xa3, 0xd4, 0x01, 0x02}, false},
		{"ext bytes inside a bin", []byte{0xc4, 0x03, 0xd6, 0xff, 0x00}, false},
		{"timestamp", []byte{0xd6, 0xff, 0, 0, 0, 1}, true},
		{"ext deep inside", []byte{0x91, 0x81, 0xa1, 'k', 0x92, 0x01, 0xd4, 0x05, 0x00}, true},
		{"ext8", []byte{0xc7, 0x01, 0x05, 0x00}, true},
		{"after a map", []byte{0x92, 0x80, 0xd5, 0x01, 0, 0}, true},
	} {
		ext, err := CheckExt(c.b, DefaultMaxDepth)
		if err != nil || ext != c.ext {
			t.Errorf("%s (%x): got %v, %v; want %v, nil", c.name, c.b, ext, err, c.ext)
		}
	}
	if _, err := CheckExt([]byte{0x92, 0xd4}, DefaultMaxDepth); err == nil {
		t.Error("truncated: got nil, want an error")
	}
}
