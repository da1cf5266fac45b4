package spmesh

import (
	"bytes"
	"encoding"
	"fmt"
	"reflect"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/tagparser/v2"
)

// The typed check closes the one place where msgpack v5 reads an ext as
// something else: its DecodeMapLen skips an ext header and decodes the
// ext's payload as a map. It is reached only where the Go target is a map
// (a map kind, map[string]any, map[string]string, through pointers,
// slices, arrays, struct fields and map keys and values). Its callers in
// v5.4.1: decodeMapValue (map kinds), decodeMapStringStringPtr, DecodeMap
// (map[string]any, and decodeMapDefault, which DecodeInterface enters only
// after reading a map code, so an any target never reinterprets),
// DecodeUntypedMap and DecodeTypedMap (only through a SetMapDecoder hook,
// which Unmarshal does not set) and Query (not a decoding path). Struct
// targets read the code first and take only a map or an array (mapLen,
// arrayLen: no ext skipping); slices and arrays take only an array. mpcheck holds
// every ext except a timestamp to "a payload that starts like a map is
// exactly one valid map"; a timestamp cannot be held to it (about 7.5% of
// valid 64-bit timestamps start with a map byte), so a timestamp where a
// map is expected could claim millions of pairs. No msgpack encoder writes
// a Go map as an ext, so [Msgpack] refuses an ext at any position the
// target decodes as a map, and leaves timestamps everywhere else alone.
//
// A body without any ext (mpcheck.CheckExt tells, from the pass it makes
// anyway) is not looked at again. Otherwise, per Go type, a plan says where
// maps are (computed once, cached). A type that reaches no map (scalars,
// strings, []byte, time.Time, any, slices and structs of those) has a nil
// plan: the cost per message is one cache lookup. Otherwise the bytes (already validated by mpcheck, so every
// length and count is within them) are walked once alongside the plan,
// following msgpack's decode rules:
//
//   - nil decodes into every kind without reading further;
//   - a map reads a map header (an ext: refused), then keys and values;
//   - a slice or array reads an array header, then its elements;
//   - a struct reads a map header (keys are field names, unknown keys are
//     skipped) or an array header (fields in declaration order), with
//     msgpack's field rules: the `msgpack` tag names a field, "-" drops
//     it, unexported fields are dropped unless embedded, an embedded
//     struct's fields are inlined (unless tagged noinline, or when one of
//     them is shadowed) and the embedded field itself is also reachable
//     by its name, "alias:" adds a name, "intern" fields hold strings;
//   - any other code where msgpack expects a map, an array or a struct
//     makes msgpack fail right there; the walk skips that value and goes
//     on (msgpack never reaches what follows, so nothing it decodes is
//     left unchecked).
//
// Subtrees that need no check:
//
//   - an interface (any) that is nil when decoding starts: msgpack decodes
//     into it by the code it reads, a map only from a map code, an ext only
//     through the decoder registered for its ext id (msgpack's own for a
//     timestamp reads exactly the ext's bytes as a time; an unknown id is
//     an error). An interface that already holds a pointer is decoded
//     into what it points to: at the top (Unmarshal(data, &x) with x
//     holding a pointer) the walk follows it; inside a value it does not
//     (typed handlers decode into fresh values, where interfaces are nil);
//   - a type with its own decoder (msgpack.CustomDecoder,
//     msgpack.Unmarshaler, encoding.BinaryUnmarshaler or
//     encoding.TextUnmarshaler, on the type or its pointer; time.Time is
//     one) or a map type given a decoder (msgpack.RegisterExtDecoder,
//     msgpack.Register) that does not read an ext as a map (asked once per
//     type, see plainMap): its own code decodes those bytes and is its own
//     to guard. Struct, slice and array types given decoders with
//     msgpack.Register are followed as their kind. Registrations made
//     after a type was first decoded are not seen (msgpack caches its
//     decoders too).

// typed plan kinds.
const (
	tMap     = iota + 1 // key, elem
	tSeq                // slice or array: elem
	tStruct             // fields, list
	tPtr                // elem (nil code, else elem)
	tDynamic            // top level only: a pointer to an interface
)

// tplan says how a Go type decodes, where that matters: a nil *tplan
// means the value reaches no map (or is opaque) and is skipped.
type tplan struct {
	kind      int
	typ       reflect.Type
	key, elem *tplan
	fields    map[string]*tplan // struct from a map: the names whose field reaches a map
	few       []namedPlan       // fields, when there are few: a scan beats hashing
	list      []*tplan          // struct from an array: every field, in msgpack's order
	reach     bool              // while building
}

var (
	typedTop   sync.Map // reflect.Type of Unmarshal's v -> *tplan
	typedPlans sync.Map // reflect.Type -> *tplan, for decoding a value of that type
)

var (
	customDecoderType     = reflect.TypeFor[msgpack.CustomDecoder]()
	unmarshalerType       = reflect.TypeFor[msgpack.Unmarshaler]()
	binaryUnmarshalerType = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	textUnmarshalerType   = reflect.TypeFor[encoding.TextUnmarshaler]()
	customEncoderType     = reflect.TypeFor[msgpack.CustomEncoder]()
	marshalerType         = reflect.TypeFor[msgpack.Marshaler]()
	binaryMarshalerType   = reflect.TypeFor[encoding.BinaryMarshaler]()
	textMarshalerType     = reflect.TypeFor[encoding.TextMarshaler]()
	errorType             = reflect.TypeFor[error]()
)

// The plans of the top-level *map[string]string and *map[string]any, which
// msgpack's Decode takes by fast paths (whatever is registered for them).
var (
	stringStringPlan = &tplan{kind: tMap, typ: reflect.TypeFor[map[string]string]()}
	stringAnyPlan    = &tplan{kind: tMap, typ: reflect.TypeFor[map[string]any]()}
)

var dynamicPlan = &tplan{kind: tDynamic}

// checkTyped refuses an ext at a position that msgpack decodes v's type as
// a map. data has passed mpcheck.Check.
func checkTyped(data []byte, v any) error {
	t := reflect.TypeOf(v)
	p, ok := typedTop.Load(t)
	if !ok {
		p, _ = typedTop.LoadOrStore(t, topPlan(t))
	}
	plan := p.(*tplan)
	if plan == nil {
		return nil
	}
	if plan.kind == tDynamic {
		// msgpack's Decode: a non-nil interface is decoded into the
		// pointer it holds; a nil one by the codes read.
		rv := reflect.ValueOf(v)
		if rv.IsNil() {
			return nil // msgpack refuses it
		}
		e := rv.Elem()
		if e.IsNil() || e.Elem().Kind() != reflect.Pointer {
			return nil
		}
		if plan = planOf(e.Elem().Type()); plan == nil {
			return nil
		}
	}
	w := typedWalker{b: data}
	return w.value(plan)
}

// topPlan is the plan for Unmarshal(data, v) with v of type t, as
// msgpack's Decode dispatches it.
func topPlan(t reflect.Type) *tplan {
	if t == nil || t.Kind() != reflect.Pointer {
		return nil // msgpack refuses it
	}
	switch t {
	case reflect.TypeFor[*map[string]string]():
		return stringStringPlan
	case reflect.TypeFor[*map[string]any]():
		return stringAnyPlan
	}
	e := t.Elem()
	if e.Kind() == reflect.Interface {
		return dynamicPlan
	}
	return planOf(e)
}

// planOf returns the plan for decoding into a value of type t.
func planOf(t reflect.Type) *tplan {
	if p, ok := typedPlans.Load(t); ok {
		return p.(*tplan)
	}
	b := planBuilder{memo: make(map[reflect.Type]*tplan)}
	root := b.build(t)
	// Fixed point: a node reaches a map when it is one or a child does.
	for changed := true; changed; {
		changed = false
		for _, n := range b.nodes {
			if !n.reach && n.childReaches() {
				n.reach, changed = true, true
			}
		}
	}
	for _, n := range b.nodes {
		n.prune()
	}
	if root != nil && !root.reach {
		root = nil
	}
	p, _ := typedPlans.LoadOrStore(t, root)
	return p.(*tplan)
}

func (n *tplan) childReaches() bool {
	r := func(c *tplan) bool { return c != nil && c.reach }
	if r(n.key) || r(n.elem) {
		return true
	}
	for _, c := range n.list {
		if r(c) {
			return true
		}
	}
	for _, c := range n.fields {
		if r(c) {
			return true
		}
	}
	return false
}

// prune drops the children that reach no map, so the walk skips them.
func (n *tplan) prune() {
	cut := func(c *tplan) *tplan {
		if c == nil || !c.reach {
			return nil
		}
		return c
	}
	n.key, n.elem = cut(n.key), cut(n.elem)
	for i, c := range n.list {
		n.list[i] = cut(c)
	}
	for k, c := range n.fields {
		if cut(c) == nil {
			delete(n.fields, k)
		}
	}
	if n.kind == tStruct && len(n.fields) > 0 && len(n.fields) <= maxFew {
		for k, c := range n.fields {
			n.few = append(n.few, namedPlan{k, c})
		}
	}
}

type namedPlan struct {
	name string
	p    *tplan
}

// maxFew is the most fields looked up by a scan rather than in the map.
const maxFew = 8

// field returns the plan of the struct field named name (nil: none, or
// reaching no map).
func (n *tplan) field(name []byte) *tplan {
	if n.few != nil || len(n.fields) == 0 {
		for _, f := range n.few {
			if f.name == string(name) {
				return f.p
			}
		}
		return nil
	}
	return n.fields[string(name)]
}

type planBuilder struct {
	memo  map[reflect.Type]*tplan
	nodes []*tplan
}

func (b *planBuilder) node(t reflect.Type, kind int) *tplan {
	n := &tplan{kind: kind, typ: t}
	b.memo[t] = n
	b.nodes = append(b.nodes, n)
	return n
}

// build returns t's plan node (nil: opaque or nothing inside can be a
// map), before reachability is known.
func (b *planBuilder) build(t reflect.Type) *tplan {
	if n, ok := b.memo[t]; ok {
		return n
	}
	if ownDecoder(t) {
		b.memo[t] = nil
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		n := b.node(t, tPtr)
		n.elem = b.build(t.Elem())
		return n
	case reflect.Map:
		if !plainMap(t) {
			b.memo[t] = nil
			return nil
		}
		n := b.node(t, tMap)
		n.reach = true
		n.key = b.build(t.Key())
		n.elem = b.build(t.Elem())
		return n
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 || t.Elem() == reflect.TypeFor[string]() {
			b.memo[t] = nil // msgpack decodes these as bytes and strings
			return nil
		}
		n := b.node(t, tSeq)
		n.elem = b.build(t.Elem())
		return n
	case reflect.Struct:
		n := b.node(t, tStruct)
		fs := structFields(t, 0)
		if fs == nil {
			return n // msgpack cannot take this type
		}
		n.fields = make(map[string]*tplan)
		n.list = make([]*tplan, len(fs.list))
		for i, f := range fs.list {
			n.list[i] = b.field(f)
		}
		for name, f := range fs.byName {
			if p := b.field(f); p != nil {
				n.fields[name] = p
			}
		}
		return n
	}
	b.memo[t] = nil // scalars, strings, interfaces, unsupported kinds
	return nil
}

func (b *planBuilder) field(f *sfield) *tplan {
	if f.intern {
		return nil // a string, or an interface decoded as one
	}
	return b.build(f.typ)
}

// ownDecoder reports whether msgpack decodes t with the type's own code
// (checked in msgpack's order, on t and on *t as for an addressable value).
func ownDecoder(t reflect.Type) bool {
	if implementsAny(t, customDecoderType, unmarshalerType, binaryUnmarshalerType, textUnmarshalerType) {
		return true
	}
	return t.Kind() != reflect.Pointer &&
		implementsAny(reflect.PointerTo(t), customDecoderType, unmarshalerType, binaryUnmarshalerType, textUnmarshalerType)
}

// ownEncoder is ownDecoder for the encoder (msgpack inlines an embedded
// struct only when both are its plain struct codecs).
func ownEncoder(t reflect.Type) bool {
	if t == errorType || implementsAny(t, customEncoderType, marshalerType, binaryMarshalerType, textMarshalerType) {
		return true
	}
	return t.Kind() != reflect.Pointer &&
		implementsAny(reflect.PointerTo(t), customEncoderType, marshalerType, binaryMarshalerType, textMarshalerType)
}

func implementsAny(t reflect.Type, ifaces ...reflect.Type) bool {
	for _, i := range ifaces {
		if t.Implements(i) {
			return true
		}
	}
	return false
}

// plainMap reports whether msgpack decodes the map type t with its map
// decoder (which reads an ext as a map) rather than with a decoder
// registered for t (msgpack.RegisterExtDecoder, msgpack.Register). It asks
// msgpack: its map decoder takes an empty map inside an ext of any id, an
// ext decoder takes only its own id.
func plainMap(t reflect.Type) (plain bool) {
	defer func() {
		if recover() != nil {
			plain = false
		}
	}()
	for _, id := range []byte{0x71, 0x72} {
		d := msgpack.NewDecoder(bytes.NewReader([]byte{0xd4, id, 0x80}))
		v := reflect.New(t).Elem()
		if err := d.DecodeValue(v); err != nil || v.IsNil() || v.Len() != 0 {
			return false
		}
	}
	return true
}

// sfield is a struct field as msgpack decodes it.
type sfield struct {
	name   string
	typ    reflect.Type
	intern bool
}

type sfields struct {
	byName map[string]*sfield
	list   []*sfield
}

func (fs *sfields) add(f *sfield) {
	fs.byName[f.name] = f
	fs.list = append(fs.list, f)
}

// maxInline bounds the nesting of embedded structs followed (a struct
// that embeds itself through a pointer is endless: msgpack overflows its
// stack on it).
const maxInline = 64

// structFields lists t's fields as msgpack v5.4.1's getFields does for
// decoding with the default "msgpack" tag (nil past maxInline).
func structFields(t reflect.Type, depth int) *sfields {
	if depth > maxInline {
		return nil
	}
	fs := &sfields{byName: make(map[string]*sfield, t.NumField())}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := tagparser.Parse(f.Tag.Get("msgpack"))
		if tag.Name == "-" {
			continue
		}
		if f.PkgPath != "" && !f.Anonymous {
			continue
		}
		fld := &sfield{name: tag.Name, typ: f.Type, intern: tag.HasOption("intern")}
		if fld.name == "" {
			fld.name = f.Name
		}
		if f.Anonymous && !tag.HasOption("noinline") {
			var inline bool
			if tag.HasOption("inline") {
				inline = true
				if f.Type.Kind() == reflect.Struct {
					if inner := structFields(f.Type, depth+1); inner != nil {
						for _, g := range inner.list {
							if _, shadowed := fs.byName[g.name]; !shadowed {
								fs.add(g)
							}
						}
					}
				}
			} else {
				inline = shouldInline(fs, f.Type, depth)
			}
			if inline {
				fs.byName[fld.name] = fld
				continue
			}
		}
		fs.add(fld)
		if alias, ok := tag.Options["alias"]; ok {
			fs.byName[alias] = fld
		}
	}
	return fs
}

// shouldInline is msgpack's rule for an embedded field without the inline
// option: a struct (or pointer to one) with msgpack's plain struct codecs,
// none of whose fields is shadowed; it then adds them to fs.
func shouldInline(fs *sfields, t reflect.Type, depth int) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || ownDecoder(t) || ownEncoder(t) {
		return false
	}
	inner := structFields(t, depth+1)
	if inner == nil {
		return false
	}
	for _, g := range inner.list {
		if _, shadowed := fs.byName[g.name]; shadowed {
			return false
		}
	}
	for _, g := range inner.list {
		fs.add(g)
	}
	return true
}

// typedWalker walks msgpack bytes that passed mpcheck.Check, so every
// header, length and count read is within b.
type typedWalker struct {
	b []byte
	i int
}

func (w *typedWalker) value(p *tplan) error {
	for p != nil && p.kind == tPtr {
		p = p.elem
	}
	if p == nil || w.b[w.i] == 0xc0 { // nil decodes into every kind
		w.skip()
		return nil
	}
	c := w.b[w.i]
	switch p.kind {
	case tMap:
		if isExt(c) {
			return decodeErr(fmt.Sprintf("msgpack: ext where a map is expected at byte %d (decoding into %s): no encoder writes a map as an ext", w.i, p.typ))
		}
		n, ok := w.mapHead()
		if !ok {
			w.skip() // msgpack fails here
			return nil
		}
		for range n {
			if err := w.value(p.key); err != nil {
				return err
			}
			if err := w.value(p.elem); err != nil {
				return err
			}
		}
	case tSeq:
		n, ok := w.arrayHead()
		if !ok {
			w.skip()
			return nil
		}
		for range n {
			if err := w.value(p.elem); err != nil {
				return err
			}
		}
	case tStruct:
		if n, ok := w.mapHead(); ok {
			for range n {
				name, ok := w.str()
				if !ok {
					w.skip() // msgpack fails on a key that is not a string
					w.skip()
					continue
				}
				if err := w.value(p.field(name)); err != nil {
					return err
				}
			}
			return nil
		}
		n, ok := w.arrayHead()
		if !ok {
			w.skip()
			return nil
		}
		for j := range n {
			var f *tplan
			if n == len(p.list) { // else msgpack fails: walk on regardless
				f = p.list[j]
			}
			if err := w.value(f); err != nil {
				return err
			}
		}
	default:
		w.skip()
	}
	return nil
}

func isExt(c byte) bool { return c >= 0xc7 && c <= 0xc9 || c >= 0xd4 && c <= 0xd8 }

// be reads n big-endian bytes at b[i].
func (w *typedWalker) be(i, n int) int {
	v := 0
	for _, c := range w.b[i : i+n] {
		v = v<<8 | int(c)
	}
	return v
}

// mapHead reads a map header: its pairs.
func (w *typedWalker) mapHead() (int, bool) {
	c := w.b[w.i]
	switch {
	case c&0xf0 == 0x80:
		w.i++
		return int(c & 0x0f), true
	case c == 0xde:
		n := w.be(w.i+1, 2)
		w.i += 3
		return n, true
	case c == 0xdf:
		n := w.be(w.i+1, 4)
		w.i += 5
		return n, true
	}
	return 0, false
}

// arrayHead reads an array header: its elements.
func (w *typedWalker) arrayHead() (int, bool) {
	c := w.b[w.i]
	switch {
	case c&0xf0 == 0x90:
		w.i++
		return int(c & 0x0f), true
	case c == 0xdc:
		n := w.be(w.i+1, 2)
		w.i += 3
		return n, true
	case c == 0xdd:
		n := w.be(w.i+1, 4)
		w.i += 5
		return n, true
	}
	return 0, false
}

// str reads a str, bin or nil (msgpack's struct keys), without copying.
func (w *typedWalker) str() ([]byte, bool) {
	c := w.b[w.i]
	h, n := 0, 0
	switch {
	case c == 0xc0:
		w.i++
		return nil, true
	case c&0xe0 == 0xa0:
		h, n = 1, int(c&0x1f)
	case c == 0xd9 || c == 0xc4:
		h, n = 2, w.be(w.i+1, 1)
	case c == 0xda || c == 0xc5:
		h, n = 3, w.be(w.i+1, 2)
	case c == 0xdb || c == 0xc6:
		h, n = 5, w.be(w.i+1, 4)
	default:
		return nil, false
	}
	s := w.b[w.i+h : w.i+h+n]
	w.i += h + n
	return s, true
}

// skip steps over one value, nested ones included.
func (w *typedWalker) skip() {
	for pending := 1; pending > 0; pending-- {
		c := w.b[w.i]
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
			w.i++
		case c&0xe0 == 0xa0:
			w.i += 1 + int(c&0x1f)
		case c&0xf0 == 0x90:
			w.i++
			pending += int(c & 0x0f)
		case c&0xf0 == 0x80:
			w.i++
			pending += 2 * int(c&0x0f)
		case c == 0xcc || c == 0xd0:
			w.i += 2
		case c == 0xcd || c == 0xd1:
			w.i += 3
		case c == 0xca || c == 0xce || c == 0xd2:
			w.i += 5
		case c == 0xcb || c == 0xcf || c == 0xd3:
			w.i += 9
		case c >= 0xd4 && c <= 0xd8: // fixext: type byte and 1 to 16 bytes
			w.i += 2 + 1<<(c-0xd4)
		case c == 0xc4 || c == 0xd9:
			w.i += 2 + w.be(w.i+1, 1)
		case c == 0xc5 || c == 0xda:
			w.i += 3 + w.be(w.i+1, 2)
		case c == 0xc6 || c == 0xdb:
			w.i += 5 + w.be(w.i+1, 4)
		case c == 0xc7:
			w.i += 3 + w.be(w.i+1, 1)
		case c == 0xc8:
			w.i += 4 + w.be(w.i+1, 2)
		case c == 0xc9:
			w.i += 6 + w.be(w.i+1, 4)
		case c == 0xdc:
			pending += w.be(w.i+1, 2)
			w.i += 3
		case c == 0xdd:
			pending += w.be(w.i+1, 4)
			w.i += 5
		case c == 0xde:
			pending += 2 * w.be(w.i+1, 2)
			w.i += 3
		case c == 0xdf:
			pending += 2 * w.be(w.i+1, 4)
			w.i += 5
		default: // 0xc1: mpcheck refuses it
			w.i++
		}
	}
}
