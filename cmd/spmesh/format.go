package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spmesh/spmesh"
	"github.com/urfave/cli/v3"
	"github.com/vmihailenco/msgpack/v5"
)

// Flags of the commands that send messages.
const (
	flagHeader = "header"
	flagString = "string"
	flagFile   = "file"
)

func bodyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: flagHeader, Aliases: []string{"H"}, Category: "message",
			Usage: "send header `key=value` with every message (repeatable)"},
		&cli.BoolFlag{Name: flagString, Category: "message",
			Usage: "msgpack codec: send the message as a string even when it parses as JSON"},
		&cli.StringFlag{Name: flagFile, Category: "message", TakesFile: true,
			Usage: "send the content of `file` as the message"},
	}
}

// encoder turns command-line text into message bodies for the codec.
type encoder struct {
	codec    spmesh.Codec
	asString bool
}

// value returns what to hand to the codec for text b: raw bytes for the raw
// codec; for msgpack, the JSON value b holds, else b as a string (or as
// bytes when it is not UTF-8).
func (e encoder) value(b []byte) (any, error) {
	if e.codec.Name() == "raw" {
		return b, nil
	}
	if !e.asString {
		if v, ok := parseJSON(b); ok {
			return v, nil
		}
	}
	if !utf8.Valid(b) {
		return b, nil
	}
	return string(b), nil
}

// parseJSON decodes b as one JSON value, keeping integers exact.
func parseJSON(b []byte) (any, bool) {
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return nil, false
	}
	d := json.NewDecoder(bytes.NewReader(t))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, false
	}
	if d.More() {
		return nil, false
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, false
	}
	return fromJSON(v), true
}

// fromJSON turns json.Numbers into int64, uint64 or float64.
func fromJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		var u uint64
		if _, err := fmt.Sscan(x.String(), &u); err == nil && !strings.ContainsAny(x.String(), ".eE") {
			return u
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = fromJSON(e)
		}
	case []any:
		for i, e := range x {
			x[i] = fromJSON(e)
		}
	}
	return v
}

// messages returns the messages a sending command sends: the one given
// as an argument or by --file, else one per line of stdin.
func messages(cmd *cli.Command, args []string, enc encoder, f func(v any) error) error {
	if len(args) > 1 {
		return usagef("too many arguments: %q (quote the message)", args)
	}
	file := cmd.String(flagFile)
	switch {
	case file != "" && len(args) == 1:
		return usagef("give the message as an argument or with --file, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		v, err := enc.value(b)
		if err != nil {
			return err
		}
		return f(v)
	case len(args) == 1:
		v, err := enc.value([]byte(args[0]))
		if err != nil {
			return err
		}
		return f(v)
	}
	sc := bufio.NewScanner(cmd.Root().Reader)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		v, err := enc.value(sc.Bytes())
		if err != nil {
			return err
		}
		if err := f(v); err != nil {
			return err
		}
	}
	return sc.Err()
}

// headers parses --header key=value flags.
func headers(cmd *cli.Command) (spmesh.Header, error) {
	hs := cmd.StringSlice(flagHeader)
	if len(hs) == 0 {
		return nil, nil
	}
	h := spmesh.Header{}
	for _, kv := range hs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--header %q: want key=value", kv)
		}
		h[k] = v
	}
	return h, nil
}

// body is a received body made ready for display: JSON holds the decoded
// msgpack value or the text; Hex is set instead for binary raw bodies.
type body struct {
	JSON any
	Hex  string
	Text bool // the body is text, not a decoded msgpack value
}

// decodeBody decodes data with the codec for display. A msgpack body that
// does not decode (a raw peer) is shown as raw.
func decodeBody(codec spmesh.Codec, data []byte) body {
	if codec.Name() == "msgpack" {
		if v, ok := decodeMsgpack(data); ok {
			return body{JSON: v}
		}
	}
	if utf8.Valid(data) && printable(string(data)) {
		return body{JSON: string(data), Text: true}
	}
	return body{Hex: hex.EncodeToString(data)}
}

// decodeMsgpack decodes exactly one msgpack value filling data.
func decodeMsgpack(data []byte) (any, bool) {
	if len(data) == 0 {
		return nil, false
	}
	r := bytes.NewReader(data)
	d := msgpack.NewDecoder(r)
	d.SetMapDecoder(decodeAnyMap)
	v, err := d.DecodeInterface()
	if err != nil || r.Len() != 0 {
		return nil, false
	}
	return jsonable(v), true
}

// decodeAnyMap decodes a map whatever its keys, rendering them as strings
// (the default decoder fails on non-string keys, and a binary key would
// not be hashable).
func decodeAnyMap(d *msgpack.Decoder) (any, error) {
	n, err := d.DecodeMapLen()
	if err != nil || n < 0 {
		return nil, err
	}
	m := make(map[string]any, min(n, 1024))
	for range n {
		k, err := d.DecodeInterface()
		if err != nil {
			return nil, err
		}
		v, err := d.DecodeInterface()
		if err != nil {
			return nil, err
		}
		if b, ok := k.([]byte); ok {
			k = string(b)
		}
		m[fmt.Sprint(k)] = v
	}
	return m, nil
}

// jsonable converts a decoded msgpack value into one encoding/json takes:
// maps with any keys, bytes (text when UTF-8, else hex), non-finite floats.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
		return x
	case []byte:
		if utf8.Valid(x) {
			return string(x)
		}
		return hex.EncodeToString(x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Sprint(x)
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Sprint(x)
		}
	}
	return v
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) && !unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// String renders the body on one line of text output: JSON for values,
// the text itself, or "hex:..." for binary.
func (b body) String() string {
	switch {
	case b.Hex != "":
		return "hex:" + b.Hex
	case b.Text:
		return b.JSON.(string)
	}
	out, err := json.Marshal(b.JSON)
	if err != nil {
		return fmt.Sprint(b.JSON)
	}
	return string(out)
}

// fields adds the body to a JSON object: "body", or "body_hex" for binary.
func (b body) fields(m map[string]any) {
	if b.Hex != "" {
		m["body_hex"] = b.Hex
		return
	}
	m["body"] = b.JSON
}

// headerText renders headers as sorted key=value pairs.
func headerText(h spmesh.Header) string {
	if len(h) == 0 {
		return ""
	}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%s=%q", k, h[k])
	}
	return sb.String()
}

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// printReceived prints a received message: with --json, fields plus its
// header (when it has one) and body as one object; else one line of
// prefix, header and body.
func (s *session) printReceived(fields map[string]any, prefix string, h spmesh.Header, data []byte) error {
	b := decodeBody(s.codec, data)
	if s.json {
		if len(h) > 0 {
			fields["header"] = h
		}
		b.fields(fields)
		return printJSON(s.stdout, fields)
	}
	line := prefix
	if ht := headerText(h); ht != "" {
		line += " " + ht
	}
	_, err := fmt.Fprintln(s.stdout, line+" "+b.String())
	return err
}
