package discovery

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/hashicorp/memberlist"
	"github.com/spmesh/spmesh"
	"github.com/vmihailenco/msgpack/v5"
)

// What a node tells the mesh about its services.
//
// Node metadata (at most memberlist.MetaMaxSize = 512 bytes, gossiped with
// every alive message) is one format byte then a msgpack array
//
//	[gen uint64, count uint, endpoints | nil, flags uint, hints bin | nil]
//
// This version always sends nil endpoints (a digest: endpoints are pulled
// from the node itself, see exchange.go, and never taken from metadata);
// hints are the 4-byte FNV-1a hashes of its service names (nil past
// maxHints), so that peers pull only the records of services they use.
//
// where endpoints is an array of [service, role, address] arrays (a bare
// endpoint's role carries the suffix "+bare", see bareSuffix). gen
// identifies the node's current set of endpoints: it starts at the node's
// start time in nanoseconds and grows by one on every change, so it is
// unique across restarts. When every endpoint fits, the metadata holds them
// (inline); when they do not, it holds only gen and count (overflow), and
// peers fetch the full records from the node over TCP (a want message
// answered by a records message, see below), retrying until they hold the
// records of that gen. Every push/pull exchange also carries the sender's
// full records, as a backstop. Flag flagLeaving marks a node that is
// leaving gracefully (memberlist itself does not tell a leave from a
// failure to its delegates). Decoders ignore array elements past the ones
// they know. Metadata is encoded and measured before
// memberlist sees it: it never exceeds the limit and is never truncated.
//
// Messages between nodes (memberlist user messages, sent over TCP) are a
// type byte then a msgpack body:
//
//	msgWant    [from string]                   send me your records
//	msgRecords [node string, gen uint64, eps]  my records at gen
//
// The push/pull state is a records body after a stateVersion byte.
const (
	metaVersion  byte = 1
	stateVersion byte = 1

	msgWant    byte = 1
	msgRecords byte = 2

	flagLeaving = 1
)

// MaxEndpoints is the most endpoints one node may advertise.
const MaxEndpoints = 4096

// meta is a decoded node metadata.
type meta struct {
	gen    uint64
	count  int
	inline bool
	eps    []spmesh.Endpoint // when inline
	flags  uint64
	hints  []uint32 // service hints (sorted), when hinted
	hinted bool
}

// encodeMeta returns the metadata for eps at gen: inline when it fits in
// limit bytes, else the overflow form.
func encodeMeta(gen uint64, eps []spmesh.Endpoint, flags uint64, limit int) []byte {
	var b bytes.Buffer
	b.WriteByte(metaVersion)
	e := msgpack.NewEncoder(&b)
	e.EncodeArrayLen(4)
	e.EncodeUint(gen)
	e.EncodeUint(uint64(len(eps)))
	encodeEndpoints(e, eps)
	e.EncodeUint(flags)
	if b.Len() <= limit {
		return b.Bytes()
	}
	b.Reset()
	b.WriteByte(metaVersion)
	e.EncodeArrayLen(4)
	e.EncodeUint(gen)
	e.EncodeUint(uint64(len(eps)))
	e.EncodeNil()
	e.EncodeUint(flags)
	return b.Bytes()
}

func decodeMeta(node string, b []byte) (meta, error) {
	if len(b) == 0 {
		return meta{inline: true}, nil // a node that advertises nothing yet
	}
	if b[0] != metaVersion {
		return meta{}, fmt.Errorf("%w: node metadata version %d", spmesh.ErrDecode, b[0])
	}
	d := msgpack.NewDecoder(bytes.NewReader(b[1:]))
	var m meta
	fields, err := d.DecodeArrayLen()
	if err != nil || fields < 3 {
		return m, decodeErr("node metadata", err)
	}
	if m.gen, err = d.DecodeUint64(); err != nil {
		return m, decodeErr("node metadata", err)
	}
	count, err := d.DecodeUint64()
	if err != nil || count > MaxEndpoints {
		return m, decodeErr("node metadata count", err)
	}
	m.count = int(count)
	m.eps, m.inline, err = decodeEndpoints(d, node, len(b))
	if err != nil {
		return m, err
	}
	if m.inline && len(m.eps) != m.count {
		return m, decodeErr("node metadata count", nil)
	}
	if fields >= 4 {
		if m.flags, err = d.DecodeUint64(); err != nil {
			return m, decodeErr("node metadata flags", err)
		}
	}
	if fields >= 5 {
		h, err := d.DecodeBytes()
		if err != nil || len(h)%4 != 0 || len(h) > 4*maxHints {
			return m, decodeErr("node metadata hints", err)
		}
		if h != nil {
			m.hinted = true
			m.hints = make([]uint32, 0, len(h)/4)
			for i := 0; i < len(h); i += 4 {
				m.hints = append(m.hints, binary.BigEndian.Uint32(h[i:]))
			}
		}
	}
	return m, nil
}

// maxHints is the most service hints a digest carries; a node with more
// services sends none (peers then pull its records whatever they watch).
const maxHints = 100

// serviceHint is the 32-bit FNV-1a hash of a service name.
func serviceHint(service string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(service))
	return h.Sum32()
}

// hintsOf returns the sorted distinct service hints of eps, nil past
// maxHints.
func hintsOf(eps []spmesh.Endpoint) []uint32 {
	var hs []uint32
	for _, ep := range eps {
		hs = append(hs, serviceHint(ep.Service))
	}
	slices.Sort(hs)
	hs = slices.Compact(hs)
	if len(hs) > maxHints {
		return nil
	}
	if hs == nil {
		hs = []uint32{}
	}
	return hs
}

// encodeRecords appends a records body: [node, gen, eps].
func encodeRecords(b *bytes.Buffer, node string, gen uint64, eps []spmesh.Endpoint) {
	e := msgpack.NewEncoder(b)
	e.EncodeArrayLen(3)
	e.EncodeString(node)
	e.EncodeUint(gen)
	encodeEndpoints(e, eps)
}

func decodeRecords(b []byte) (node string, gen uint64, eps []spmesh.Endpoint, err error) {
	return decodeRecordsFrom(msgpack.NewDecoder(bytes.NewReader(b)), len(b))
}

// decodeRecordsFrom reads a records body from d; size is the bytes left.
func decodeRecordsFrom(d *msgpack.Decoder, size int) (node string, gen uint64, eps []spmesh.Endpoint, err error) {
	if n, err := d.DecodeArrayLen(); err != nil || n != 3 {
		return "", 0, nil, decodeErr("records", err)
	}
	if node, err = d.DecodeString(); err != nil {
		return "", 0, nil, decodeErr("records", err)
	}
	if gen, err = d.DecodeUint64(); err != nil {
		return "", 0, nil, decodeErr("records", err)
	}
	eps, ok, err := decodeEndpoints(d, node, size)
	if err != nil || !ok {
		return "", 0, nil, decodeErr("records", err)
	}
	return node, gen, eps, nil
}

func encodeEndpoints(e *msgpack.Encoder, eps []spmesh.Endpoint) {
	e.EncodeArrayLen(len(eps))
	for _, ep := range eps {
		e.EncodeArrayLen(3)
		e.EncodeString(ep.Service)
		e.EncodeString(wireRole(ep))
		e.EncodeString(ep.Addr)
	}
}

// bareSuffix marks a bare endpoint (spmesh.Endpoint.Bare) on the wire: its
// role is sent as role+bareSuffix, e.g. "rep+bare". A role, not a fourth
// field: older decoders refuse an endpoint of any other length (and with it
// the whole records message), while an unknown role they simply never
// watch, so an older enveloped connector never dials a bare endpoint
// either. Roles ending in the suffix are reserved (checkEndpoint).
const bareSuffix = "+bare"

// wireRole is ep's role as sent.
func wireRole(ep spmesh.Endpoint) string {
	if ep.Bare {
		return string(ep.Role) + bareSuffix
	}
	return string(ep.Role)
}

// fromWire makes the endpoint of a received [service, role, addr].
func fromWire(service, role, addr, node string) spmesh.Endpoint {
	ep := spmesh.Endpoint{Service: service, Role: spmesh.Role(role), Addr: addr, Node: node}
	if r, ok := strings.CutSuffix(role, bareSuffix); ok && r != "" {
		ep.Role, ep.Bare = spmesh.Role(r), true
	}
	return ep
}

// decodeEndpoints reads an array of endpoints (ok) or nil (not ok), each
// stamped with node. size bounds the count: every endpoint takes bytes.
func decodeEndpoints(d *msgpack.Decoder, node string, size int) (eps []spmesh.Endpoint, ok bool, err error) {
	n, err := d.DecodeArrayLen()
	if err != nil {
		return nil, false, decodeErr("endpoints", err)
	}
	if n < 0 {
		return nil, false, nil
	}
	if n > MaxEndpoints || n > size {
		return nil, false, decodeErr("endpoint count", nil)
	}
	eps = make([]spmesh.Endpoint, 0, n)
	for range n {
		if k, err := d.DecodeArrayLen(); err != nil || k != 3 {
			return nil, false, decodeErr("endpoint", err)
		}
		var f [3]string
		for i := range f {
			if f[i], err = d.DecodeString(); err != nil {
				return nil, false, decodeErr("endpoint", err)
			}
		}
		ep := fromWire(f[0], f[1], f[2], node)
		if checkEndpoint(ep) != nil {
			return nil, false, decodeErr("endpoint", nil)
		}
		eps = append(eps, ep)
	}
	sortEndpoints(eps)
	return eps, true, nil
}

func decodeErr(what string, err error) error {
	if err == nil {
		err = errors.New("malformed")
	}
	return fmt.Errorf("%w: discovery %s: %v", spmesh.ErrDecode, what, err)
}

// encodeDigest returns the metadata a node gossips: its gen, endpoint
// count, flags and service hints, never the endpoints (see exchange.go).
// hints nil: too many services to hint, pull whatever you watch.
func encodeDigest(gen uint64, count int, flags uint64, hints []uint32) []byte {
	var b bytes.Buffer
	b.WriteByte(metaVersion)
	e := msgpack.NewEncoder(&b)
	e.EncodeArrayLen(5)
	e.EncodeUint(gen)
	e.EncodeUint(uint64(count))
	e.EncodeNil()
	e.EncodeUint(flags)
	if hints == nil {
		e.EncodeNil()
	} else {
		h := make([]byte, 0, 4*len(hints))
		for _, x := range hints {
			h = binary.BigEndian.AppendUint32(h, x)
		}
		e.EncodeBytes(h)
	}
	return b.Bytes()
}

// metaLimit is what metadata may take.
const metaLimit = memberlist.MetaMaxSize
