package spmesh_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// tsMap is a valid 64-bit timestamp (1995-08-15, 936,037,388 ns) whose 8
// bytes start with 0xdf: read as a map by msgpack's DecodeMapLen, it claims
// 0x30303030 = 808 M pairs.
var tsMap = []byte{0xd7, 0xff, 0xdf, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30}

// fixmap/str helpers for hand-built bodies.
func mpMap(pairs ...[]byte) []byte {
	return append([]byte{0x80 | byte(len(pairs)/2)}, bytes.Join(pairs, nil)...)
}
func mpArr(elems ...[]byte) []byte {
	return append([]byte{0x90 | byte(len(elems))}, bytes.Join(elems, nil)...)
}
func mpStr(s string) []byte { return append([]byte{0xa0 | byte(len(s))}, s...) }

type namedMap map[string]any

type withMap struct {
	N int
	M map[string]int
}

type withTaggedMap struct {
	M map[string]any `msgpack:"attrs"`
}

type embedsWithMap struct {
	ID string
	withMap
}

type embedsPtr struct {
	*withTaggedMap
}

type mapInSlice struct {
	L []map[string]string
}

type ptrMap struct {
	P *map[string]int
	Q **map[string]int
}

func TestTimestampWhereMapExpectedRefused(t *testing.T) {
	ts4 := []byte{0xd6, 0xff, 0x8f, 0, 0, 0} // 4-byte timestamp starting with fixmap 15
	ts12 := append([]byte{0xc7, 12, 0xff, 0x80, 0, 0, 0}, make([]byte, 8)...)
	var held map[string]int
	cases := []struct {
		name string
		body []byte
		into any
	}{
		{"map[string]any", tsMap, new(map[string]any)},
		{"map[string]string", tsMap, new(map[string]string)},
		{"map[string]int", tsMap, new(map[string]int)},
		{"map[string]int, 4-byte timestamp", ts4, new(map[string]int)},
		{"map[string]int, 12-byte timestamp", ts12, new(map[string]int)},
		{"map[int]bool", tsMap, new(map[int]bool)},
		{"named map[string]any", tsMap, new(namedMap)},
		{"*map[string]int", tsMap, new(*map[string]int)},
		{"struct field", mpMap(mpStr("M"), tsMap), new(withMap)},
		{"struct field after others", mpMap(mpStr("N"), []byte{1}, mpStr("x"), tsMap, mpStr("M"), tsMap), new(withMap)},
		{"tagged struct field", mpMap(mpStr("attrs"), tsMap), new(withTaggedMap)},
		{"struct as array", mpArr([]byte{1}, tsMap), new(withMap)},
		{"embedded struct, inlined field", mpMap(mpStr("ID"), mpStr("x"), mpStr("M"), tsMap), new(embedsWithMap)},
		{"embedded struct by its name", mpMap(mpStr("withMap"), mpMap(mpStr("M"), tsMap)), new(embedsWithMap)},
		{"embedded pointer, inlined", mpMap(mpStr("attrs"), tsMap), new(embedsPtr)},
		{"slice of maps", mpArr(mpMap(), tsMap), new([]map[string]int)},
		{"array of maps", mpArr(tsMap), new([2]map[string]int)},
		{"struct with a slice of maps", mpMap(mpStr("L"), mpArr(tsMap)), new(mapInSlice)},
		{"pointer to map field", mpMap(mpStr("P"), tsMap), new(ptrMap)},
		{"pointer to pointer to map field", mpMap(mpStr("Q"), tsMap), new(ptrMap)},
		{"map value", mpMap(mpStr("k"), tsMap), new(map[string]map[string]int)},
		{"map of slices of structs", mpMap(mpStr("k"), mpArr(mpMap(mpStr("M"), tsMap))), new(map[string][]withMap)},
		{"any holding *map", tsMap, func() any { var v any = &held; return &v }()},
	}
	for _, c := range cases {
		var err error
		n := allocated(func() { err = spmesh.Msgpack.Unmarshal(c.body, c.into) })
		if !errors.Is(err, spmesh.ErrDecode) || !strings.Contains(err.Error(), "ext where a map is expected") {
			t.Errorf("%s: got %v, want ErrDecode naming an ext where a map is expected", c.name, err)
			continue
		}
		if n > 16<<10 {
			t.Errorf("%s: allocated %d bytes refusing %d, want at most 16 KiB", c.name, n, len(c.body))
		}
		t.Logf("%-34s %3d bytes: %5d B allocated, %v", c.name, len(c.body), n, err)
	}
	if err := spmesh.Msgpack.Unmarshal(tsMap, (*any)(nil)); !errors.Is(err, spmesh.ErrDecode) || strings.Contains(err.Error(), "cannot decode") {
		t.Errorf("nil *any: got %v, want msgpack's own ErrDecode", err)
	}
}

// TestTimestampTrapWithoutTypedCheck shows what the typed check prevents:
// the 10-byte body passes the untyped validator, and msgpack alone, into a
// map[string]int, allocates tens of MiB from its claim (into
// map[string]any, the 808 M-entry map exceeds any memory: a process capped
// at 4 GiB dies of "out of memory"). If this fails, msgpack changed: the
// trap may be gone.
func TestTimestampTrapWithoutTypedCheck(t *testing.T) {
	if err := spmesh.CheckMsgpack(tsMap, 0); err != nil {
		t.Fatalf("CheckMsgpack: %v, want the timestamp accepted", err)
	}
	var tm time.Time
	if err := spmesh.Msgpack.Unmarshal(tsMap, &tm); err != nil || tm.Year() != 1995 {
		t.Fatalf("as a time: got %v, %v; want a valid time", tm, err)
	}
	var m map[string]int
	n := allocated(func() { _ = msgpack.Unmarshal(tsMap, &m) })
	if n < 16<<20 {
		t.Fatalf("msgpack alone allocated %d bytes, want the trap's tens of MiB (msgpack changed?)", n)
	}
	t.Logf("10 bytes into map[string]int, msgpack alone: %d bytes allocated (%.0fx)", n, float64(n)/float64(len(tsMap)))
}

// mapByteTimes returns times whose msgpack timestamps start with a map
// byte (fixmap, map16, map32): 4-byte ones (whole seconds in 2038-2046
// and 2088) and 8-byte ones (by their nanoseconds), plus random ones.
func mapByteTimes(r *rand.Rand, n int) []time.Time {
	var ts []time.Time
	for len(ts) < n {
		first := []byte{0x80 + byte(r.IntN(16)), 0xde, 0xdf}[r.IntN(3)]
		switch r.IntN(3) {
		case 0: // 4 bytes: seconds
			sec := uint32(first)<<24 | uint32(r.IntN(1<<24))
			ts = append(ts, time.Unix(int64(sec), 0).UTC())
		case 1: // 8 bytes: nanoseconds in the top 30 bits
			ns := int64(first)<<22 | int64(r.IntN(1<<22))
			ts = append(ts, time.Unix(int64(r.IntN(1<<34)), ns).UTC())
		default:
			ts = append(ts, time.Unix(int64(r.IntN(1<<40)), int64(r.IntN(1e9))).UTC())
		}
	}
	return ts
}

type legitTimes struct {
	T      time.Time
	P      *time.Time
	S      []time.Time
	M      map[string]time.Time
	Nested map[string][]struct{ At time.Time }
	A      any
	Attrs  map[string]any
}

func TestTimestampsStillDecode(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	starts := 0
	for i := range 200 {
		ts := mapByteTimes(r, 6)
		v := legitTimes{
			T: ts[0], P: &ts[1], S: ts[:3],
			M:      map[string]time.Time{"a": ts[2], "b": ts[3]},
			Nested: map[string][]struct{ At time.Time }{"x": {{ts[4]}}},
			A:      ts[5],
			Attrs:  map[string]any{"when": ts[0], "n": i},
		}
		b, err := spmesh.Msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, tm := range ts {
			enc, _ := msgpack.Marshal(tm)
			if p := enc[2]; p&0xf0 == 0x80 || p == 0xde || p == 0xdf {
				starts++
			}
		}
		var got legitTimes
		if err := spmesh.Msgpack.Unmarshal(b, &got); err != nil {
			t.Fatalf("body %x: %v", b, err)
		}
		var want legitTimes
		if err := msgpack.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) || !got.T.Equal(v.T) || !got.M["b"].Equal(v.M["b"]) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
		for _, into := range []any{new(map[string]time.Time), new([]time.Time), new(time.Time), new(any)} {
			src := map[string]time.Time{"a": ts[0]}
			var val any = src
			switch into.(type) {
			case *[]time.Time:
				val = ts
			case *time.Time:
				val = ts[1]
			}
			b, _ := spmesh.Msgpack.Marshal(val)
			if err := spmesh.Msgpack.Unmarshal(b, into); err != nil {
				t.Fatalf("%x into %T: %v", b, into, err)
			}
		}
	}
	if starts < 600 {
		t.Fatalf("only %d timestamps starting with a map byte, want most of 1200", starts)
	}
	t.Logf("1,200 timestamps, %d of them starting with a map byte, decoded into time.Time, *time.Time, []time.Time, map[string]time.Time and any positions", starts)
}

// The field rules: twin types put a timestamp exactly where the target
// has a map, by msgpack's own encoder (same field rules as its decoder).
type (
	rulesInner struct {
		IM map[string]int
		IS string
	}
	rulesInnerTS struct {
		IM *time.Time
		IS string
	}
	NoInl struct {
		X map[string]int
	}
	noInlineTS struct {
		X *time.Time
	}
	Shad struct {
		Dup map[string]int
	}
	shadowTS struct {
		Dup *time.Time
	}
	rules struct {
		Tagged  map[string]int `msgpack:"t"`
		Dropped map[string]int `msgpack:"-"`
		hidden  map[string]int //nolint:unused
		Alias   map[string]int `msgpack:"al,alias:other"`
		Plain   int
		rulesInner
		NoInl `msgpack:",noinline"`
		Dup   int
		Shad
		Iface any
	}
	rulesTS struct {
		Tagged *time.Time `msgpack:"t"`
		Plain  int
		rulesInnerTS
		NoInline *noInlineTS `msgpack:"NoInl"`
		Dup      int
		Shadow   *shadowTS `msgpack:"Shad"`
	}
)

func TestTypedFieldRules(t *testing.T) {
	at := time.Unix(1<<33, 0xdf<<22).UTC() // 8-byte timestamp starting with 0xdf
	ts, _ := msgpack.Marshal(at)
	if ts[2] != 0xdf {
		t.Fatalf("timestamp %x does not start with map32", ts)
	}
	refused := func(body []byte) bool {
		var v rules
		err := spmesh.Msgpack.Unmarshal(body, &v)
		return err != nil && strings.Contains(err.Error(), "ext where a map is expected")
	}
	// msgpack's encoder of the twin writes a timestamp where rules has a
	// map (by the same field rules as its decoder), one at a time.
	for i, twin := range []rulesTS{
		{},
		{Tagged: &at},
		{rulesInnerTS: rulesInnerTS{IM: &at}},
		{NoInline: &noInlineTS{X: &at}},
		{Shadow: &shadowTS{Dup: &at}},
	} {
		b, err := msgpack.Marshal(twin)
		if err != nil {
			t.Fatal(err)
		}
		if refused(b) != (i > 0) {
			t.Errorf("twin %d, body %x: refused %v, want %v", i, b, !(i > 0), i > 0)
		}
	}
	// msgpack's fields in order (the array form): t, al, Plain, IM, IS,
	// NoInl, Dup, Shad, Iface.
	asArray := func(first []byte) []byte {
		return mpArr(first, []byte{0xc0}, []byte{0}, []byte{0xc0}, mpStr(""), mpMap(), []byte{0}, mpMap(), []byte{0xc0})
	}
	for _, c := range []struct {
		name   string
		body   []byte
		refuse bool
		fails  bool // msgpack fails on it anyway
	}{
		{"tag name", mpMap(mpStr("t"), ts), true, false},
		{"Go name of a tagged field (unknown key)", mpMap(mpStr("Tagged"), ts), false, false},
		{"field tagged -", mpMap(mpStr("Dropped"), ts), false, false},
		{"unexported field", mpMap(mpStr("hidden"), ts), false, false},
		{"alias", mpMap(mpStr("other"), ts), true, false},
		{"name with alias", mpMap(mpStr("al"), ts), true, false},
		{"inlined field", mpMap(mpStr("IM"), ts), true, false},
		{"embedded by name", mpMap(mpStr("rulesInner"), mpMap(mpStr("IM"), ts)), true, false},
		{"noinline: field not inlined", mpMap(mpStr("X"), ts), false, false},
		{"noinline: by name", mpMap(mpStr("NoInl"), mpMap(mpStr("X"), ts)), true, false},
		{"shadowed: the outer int wins", mpMap(mpStr("Dup"), ts), false, true},
		{"shadowed: not inlined, by name", mpMap(mpStr("Shad"), mpMap(mpStr("Dup"), ts)), true, false},
		{"any field", mpMap(mpStr("Iface"), ts), false, false},
		{"any field holding a map with a timestamp", mpMap(mpStr("Iface"), mpMap(mpStr("k"), ts)), false, false},
		{"int field", mpMap(mpStr("Plain"), ts), false, true},
		{"bin key", mpMap([]byte{0xc4, 1, 't'}, ts), true, false},
		{"as array, map field", asArray(ts), true, false},
		{"as array, nil map", asArray([]byte{0xc0}), false, false},
		{"as array, wrong length", mpArr(ts), false, true},
	} {
		if got := refused(c.body); got != c.refuse {
			t.Errorf("%s: refused %v, want %v (body %x)", c.name, got, c.refuse, c.body)
		}
		if !c.refuse {
			var v rules
			if err := msgpack.Unmarshal(c.body, &v); (err != nil) != c.fails {
				t.Errorf("%s: msgpack alone: got %v, want failing %v", c.name, err, c.fails)
			}
		}
	}
}

// Types with their own decoders are opaque; registered ext map types too.
type ownMap map[string]int

func (m *ownMap) DecodeMsgpack(d *msgpack.Decoder) error { return d.Skip() }

type extMap map[string]int

func TestTypedOpaque(t *testing.T) {
	var o ownMap
	if err := spmesh.Msgpack.Unmarshal(tsMap, &o); errors.Is(err, spmesh.ErrDecode) && strings.Contains(err.Error(), "map is expected") {
		t.Errorf("custom decoder: got %v, want it left to the type", err)
	}
	msgpack.RegisterExtDecoder(77, (*extMap)(nil), func(d *msgpack.Decoder, v reflect.Value, n int) error {
		_, err := d.DecodeInterface() // reads the payload (a map) as any
		return err
	})
	defer msgpack.UnregisterExt(77)
	body := []byte{0xd4, 77, 0x80}
	var e extMap
	if err := spmesh.Msgpack.Unmarshal(body, &e); err != nil {
		t.Errorf("map type with a registered ext decoder: got %v, want nil", err)
	}
	var s struct{ E extMap }
	if err := spmesh.Msgpack.Unmarshal(mpMap(mpStr("E"), body), &s); err != nil {
		t.Errorf("field of that type: got %v, want nil", err)
	}
}

// A type that reaches no map costs one lookup and allocates nothing more.
func TestTypedNoMapNoCost(t *testing.T) {
	type flat struct {
		A int
		B string
		T time.Time
		S []int
		X any
	}
	b, _ := spmesh.Msgpack.Marshal(flat{A: 1, B: "x", T: time.Now(), S: []int{1}, X: map[string]any{"a": 1}})
	var v flat
	_ = spmesh.Msgpack.Unmarshal(b, &v)
	codec := testing.AllocsPerRun(100, func() { v = flat{}; _ = spmesh.Msgpack.Unmarshal(b, &v) })
	alone := testing.AllocsPerRun(100, func() { v = flat{}; _ = msgpack.Unmarshal(b, &v) })
	if codec > alone {
		t.Errorf("codec: %.0f allocs a decode, msgpack alone %.0f: the check allocates", codec, alone)
	}
	type withMaps struct {
		M  map[string]int
		L  []map[string]string
		At time.Time // an ext: the body is walked
	}
	b, _ = spmesh.Msgpack.Marshal(withMaps{M: map[string]int{"a": 1}, L: []map[string]string{{"k": "v"}}, At: time.Now()})
	var w withMaps
	_ = spmesh.Msgpack.Unmarshal(b, &w)
	codec = testing.AllocsPerRun(100, func() { w = withMaps{}; _ = spmesh.Msgpack.Unmarshal(b, &w) })
	alone = testing.AllocsPerRun(100, func() { w = withMaps{}; _ = msgpack.Unmarshal(b, &w) })
	if codec > alone {
		t.Errorf("with maps: codec %.0f allocs a decode, msgpack alone %.0f: the walk allocates", codec, alone)
	}
}

// fuzzTargets are map-reaching types a handler might decode into.
func fuzzTargets() []func() any {
	return []func() any{
		func() any { return new(map[string]any) },
		func() any { return new(map[string]int) },
		func() any { return new(withMap) },
		func() any { return new(embedsWithMap) },
		func() any { return new([]map[string]string) },
		func() any { return new(map[string]map[string]int) },
		func() any { return new(legitTimes) },
		func() any { return new(rules) },
	}
}

// FuzzTyped decodes arbitrary bodies into map-reaching types: none may
// allocate more than a small multiple of the body (the untyped check bounds
// counts by the bytes; the typed check refuses an ext read as a map), and
// a valid body that fails fails with msgpack's own error (or a msgpack
// panic turned into one), unless refused for an ext where a map is
// expected.
func FuzzTyped(f *testing.F) {
	f.Add(tsMap)
	f.Add(mpMap(mpStr("M"), tsMap))
	f.Add(mpArr(mpMap(), tsMap))
	f.Add([]byte{0xc7, 0x05, 0x30, 0xdf, 0x30, 0x30, 0x30, 0x30})
	b, _ := msgpack.Marshal(legitTimes{T: time.Now(), M: map[string]time.Time{"a": time.Now()}, Attrs: map[string]any{"x": []any{1, "y"}}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, into := range fuzzTargets() {
			v := into()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := spmesh.Msgpack.Unmarshal(body, v)
			runtime.ReadMemStats(&after)
			n := after.TotalAlloc - before.TotalAlloc
			if limit := uint64(64*len(body) + 64<<10); n > limit {
				t.Fatalf("body %x into %T: allocated %d bytes, want at most %d (err %v)", body, v, n, limit, err)
			}
			if err != nil && !errors.Is(err, spmesh.ErrDecode) {
				t.Fatalf("body %x into %T: %v, want ErrDecode", body, v, err)
			}
			if err != nil && strings.Contains(err.Error(), "ext where a map is expected") {
				continue
			}
			if err == nil || spmesh.CheckMsgpack(body, 0) != nil {
				continue
			}
			// Valid msgpack, not refused by the typed check: the error is
			// msgpack's own.
			if msg := err.Error(); !strings.HasPrefix(msg, spmesh.ErrDecode.Error()+": msgpack: msgpack") &&
				!strings.HasPrefix(msg, spmesh.ErrDecode.Error()+": msgpack: cannot decode into") {
				t.Fatalf("body %x into %T: %v, want msgpack's own error", body, v, err)
			}
		}
	})
}

// TestMsgpackPanicIsDecodeError: msgpack panics on a struct whose interface
// field gets a map and then, for a repeated key, a second value (found by
// FuzzTyped); the codec returns ErrDecode instead.
func TestMsgpackPanicIsDecodeError(t *testing.T) {
	type withAny struct{ A any }
	body := mpMap(mpStr("A"), mpMap(mpStr("k"), []byte{1}), mpStr("A"), mpMap(mpStr("k"), []byte{2}))
	func() {
		defer func() {
			if recover() == nil {
				t.Log("msgpack alone no longer panics on it")
			}
		}()
		var v withAny
		_ = msgpack.Unmarshal(body, &v)
	}()
	var v withAny
	if err := spmesh.Msgpack.Unmarshal(body, &v); !errors.Is(err, spmesh.ErrDecode) {
		t.Fatalf("got %v, want ErrDecode", err)
	}
	// The same once the field holds a map: decoding into a reused value.
	v = withAny{}
	if err := spmesh.Msgpack.Unmarshal(mpMap(mpStr("A"), mpMap()), &v); err != nil {
		t.Fatal(err)
	}
	if err := spmesh.Msgpack.Unmarshal(mpMap(mpStr("A"), mpMap()), &v); !errors.Is(err, spmesh.ErrDecode) {
		t.Fatalf("reused value: got %v, want ErrDecode", err)
	}
}

// The oracle: msgpack itself says where it decodes a map. The oracle's map
// types are decoded by a registered decoder that does what msgpack's map
// decoder does and notes when it meets an ext (which msgpack's DecodeMapLen would skip
// and read through); msgpack's own struct field rules decide which bytes
// reach it. The typed check must refuse every body on which msgpack meets
// one, and refuse no body that msgpack decodes without meeting one.
type (
	oracleMap   map[string]int
	oracleMapMM map[string]*oracleMap
)

var oracleSawExt bool

// oracleDecoder decodes a map like msgpack's map decoder, noting an ext.
func oracleDecoder(d *msgpack.Decoder, v reflect.Value) error {
	c, err := d.PeekCode()
	if err != nil {
		return err
	}
	if msgpcode.IsExt(c) {
		oracleSawExt = true
	}
	n, err := d.DecodeMapLen()
	if err != nil || n == -1 {
		v.Set(reflect.Zero(v.Type()))
		return err
	}
	m := reflect.MakeMapWithSize(v.Type(), min(n, 16))
	for range n {
		k, err := d.DecodeString()
		if err != nil {
			return err
		}
		e := reflect.New(v.Type().Elem()).Elem()
		if err := d.DecodeValue(e); err != nil {
			return err
		}
		m.SetMapIndex(reflect.ValueOf(k), e)
	}
	v.Set(m)
	return nil
}

func init() {
	msgpack.Register(oracleMap{}, nil, oracleDecoder)
	msgpack.Register(oracleMapMM{}, nil, oracleDecoder)
}

type (
	oracleInner struct {
		IM oracleMap
		IS string
	}
	OracleNoInl struct{ X oracleMap }
	OracleShad  struct{ Dup oracleMap }
	oracleRules struct {
		Tagged  oracleMap `msgpack:"t"`
		Dropped oracleMap `msgpack:"-"`
		hidden  oracleMap //nolint:unused
		Alias   oracleMap `msgpack:"al,alias:other"`
		Plain   int
		oracleInner
		OracleNoInl `msgpack:",noinline"`
		Dup         int
		OracleShad
		P     *oracleMap
		L     []oracleMap
		MM    oracleMapMM
		A     [2]oracleMap
		S     []oracleInner
		Iface any
		At    time.Time
	}
)

func oracleTargets() []func() any {
	return []func() any{
		func() any { return new(oracleRules) },
		func() any { return new(oracleMap) },
		func() any { return new([]oracleMap) },
		func() any { return new(oracleMapMM) },
		func() any { return new(*oracleMap) },
	}
}

// checkOracle compares the typed check with msgpack on body, and returns
// how many targets msgpack read an ext as a map in.
func checkOracle(t *testing.T, body []byte) (saw int) {
	if spmesh.CheckMsgpack(body, 0) != nil {
		return 0
	}
	for _, into := range oracleTargets() {
		err := spmesh.Msgpack.Unmarshal(body, into())
		refused := err != nil && strings.Contains(err.Error(), "ext where a map is expected")
		oracleSawExt = false
		var merr error
		func() {
			defer func() {
				if p := recover(); p != nil {
					merr = fmt.Errorf("panic: %v", p)
				}
			}()
			merr = msgpack.Unmarshal(body, into())
		}()
		switch {
		case oracleSawExt && !refused:
			t.Fatalf("body %x into %T: msgpack read an ext as a map, the codec did not refuse it (%v)", body, into(), err)
		case refused && merr == nil && !oracleSawExt:
			t.Fatalf("body %x into %T: refused (%v), but msgpack decodes it without reading an ext as a map", body, into(), err)
		}
		if oracleSawExt {
			saw++
		}
	}
	return saw
}

func TestTypedOracle(t *testing.T) {
	at := time.Unix(1<<33, 0xdf<<22).UTC()
	ts, _ := msgpack.Marshal(at)
	bodies := [][]byte{tsMap}
	for _, key := range []string{"t", "Tagged", "Dropped", "hidden", "al", "other", "Plain", "IM", "IS", "oracleInner", "OracleNoInl", "X", "Dup", "OracleShad", "P", "L", "MM", "A", "S", "Iface", "At"} {
		bodies = append(bodies,
			mpMap(mpStr(key), ts),
			mpMap(mpStr(key), mpArr(ts)),
			mpMap(mpStr(key), mpMap(mpStr("IM"), ts)),
			mpMap(mpStr(key), mpMap(mpStr("X"), ts)),
			mpMap(mpStr(key), mpMap(mpStr("Dup"), ts)),
			mpMap(mpStr(key), mpMap(mpStr("k"), ts)),
			mpMap(mpStr(key), mpArr(mpMap(mpStr("IM"), ts))))
	}
	for i := range 17 {
		elems := make([][]byte, 17)
		for j := range elems {
			elems[j] = []byte{0xc0}
		}
		elems[i] = ts
		bodies = append(bodies, mpArr(elems[:15]...), mpArr(elems[:16]...))
	}
	saw := 0
	for _, b := range bodies {
		saw += checkOracle(t, b)
	}
	if saw < 40 {
		t.Fatalf("msgpack read an ext as a map %d times, want at least 40 (the oracle is blind?)", saw)
	}
	t.Logf("%d bodies into %d types, msgpack reading an ext as a map %d times: the typed check refused exactly those", len(bodies), len(oracleTargets()), saw)
}

// FuzzTypedOracle: on any body, the typed check refuses exactly where
// msgpack would read an ext as a map (see checkOracle).
func FuzzTypedOracle(f *testing.F) {
	at := time.Unix(1<<33, 0xdf<<22).UTC()
	ts, _ := msgpack.Marshal(at)
	f.Add(mpMap(mpStr("t"), ts))
	f.Add(mpMap(mpStr("oracleInner"), mpMap(mpStr("IM"), ts)))
	f.Add(mpMap(mpStr("S"), mpArr(mpMap(mpStr("IM"), ts))))
	f.Add(mpMap(mpStr("MM"), mpMap(mpStr("k"), ts)))
	f.Add(mpArr(ts))
	f.Fuzz(func(t *testing.T, body []byte) { _ = checkOracle(t, body) })
}
