package spmesh

import (
	"encoding/hex"
	"fmt"
)

// Header holds string key/value pairs that travel with a message: trace
// context, correlation ids, application metadata. A nil Header is empty and
// valid for reading.
type Header map[string]string

// Get returns the value for key, or "".
func (h Header) Get(key string) string { return h[key] }

// Set sets key to value. It panics on a nil Header, like a map.
func (h Header) Set(key, value string) { h[key] = value }

// Clone returns a copy of h (nil for an empty h).
func (h Header) Clone() Header {
	if len(h) == 0 {
		return nil
	}
	c := make(Header, len(h))
	for k, v := range h {
		c[k] = v
	}
	return c
}

// ID identifies a message. It is unique per sender and stays the same
// across resends and redeliveries, so receivers can de-duplicate by it.
type ID [16]byte

// String returns the id in hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero ID.
func (id ID) IsZero() bool { return id == ID{} }

// MarshalText encodes the id as hex (so JSON shows it as a string).
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes a hex id.
func (id *ID) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(id) {
		return fmt.Errorf("%w: id %q: want %d hex digits", ErrDecode, b, 2*len(id))
	}
	_, err := hex.Decode(id[:], b)
	if err != nil {
		return fmt.Errorf("%w: id %q: %v", ErrDecode, b, err)
	}
	return nil
}
