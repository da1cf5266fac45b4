package wire

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/spmesh/spmesh"
)

// Batch frames: see the package doc. A publisher encodes each message once,
// as entry content ([AppendEntryHead] then the body), and later frames a run
// of them either as a batch ([AppendHeader] with KindBatch, then
// [AppendEntry] for each) or, for a lone message, as a plain pub/sub frame
// ([AppendPublishEntry]).

// AppendEntryHead appends the start of a batch entry's content: its own
// header map, holding h when it is not empty. The caller appends the body.
func AppendEntryHead(dst []byte, h spmesh.Header) []byte {
	if len(h) == 0 {
		return append(dst, 0x80)
	}
	dst = append(dst, 0x81, keyHeaders)
	dst = appendMapLen(dst, len(h))
	for k, v := range h {
		dst = appendStr(appendStr(dst, k), v)
	}
	return dst
}

// EntryOverhead is how many bytes [AppendEntry] adds to n bytes of content.
func EntryOverhead(n int) int {
	switch {
	case n <= math.MaxUint8:
		return 2
	case n <= math.MaxUint16:
		return 3
	}
	return 5
}

// AppendEntry appends one entry of a batch frame: content (from
// [AppendEntryHead] and the body) framed as a msgpack bin.
func AppendEntry(dst, content []byte) []byte { return appendBin(dst, content) }

// PublishOverhead bounds how many bytes [AppendPublishEntry] adds to the
// entry content for topic: a plain frame for content is at most
// len(content) + PublishOverhead(topic) bytes.
func PublishOverhead(topic string) int {
	// topic 0x00, version, kind, map length, then id (key, c4, 16, 16
	// bytes), time, pub and seq (key and at most 9 bytes each), minus the
	// content's own map length byte.
	return len(topic) + 1 + 2 + 1 + 19 + 3*10 - 1
}

// AppendPublishEntry appends a plain pub/sub frame (KindPublish) for one
// entry content: m's fields (m.Header must be empty, m.Kind is ignored) with
// the entry's own header keys merged in, then its body. Content must come
// from [AppendEntryHead] and a body.
func AppendPublishEntry(dst []byte, m *Msg, content []byte) []byte {
	r := reader{b: content}
	n, err := r.mapLen()
	if err != nil || n > math.MaxUint16 {
		// Not entry content: write the fields and the bytes as the body.
		n, r.i = 0, 0
	}
	pm := *m
	pm.Kind, pm.Header = KindPublish, nil
	dst = appendHeader(dst, &pm, int(n))
	return append(dst, content[r.i:]...)
}

// Entries reads the messages packed in a batch: the Msg that [Decode]
// returned for a KindBatch frame. Each message shares the batch's topic and
// its body aliases the frame.
type Entries struct {
	batch *Msg
	r     reader
	i     uint64
}

// NewEntries starts reading the entries of batch, which must stay unchanged
// while they are read.
func NewEntries(batch *Msg) Entries {
	return Entries{batch: batch, r: reader{b: batch.Body}}
}

var (
	errNoEntry    = errors.New("batch without entries")
	errEmptyEntry = errors.New("empty entry (it must hold at least its header map)")
)

// Count checks the entries not yet read, each completely (framing and
// header map, allocating nothing), and returns how many there are; after
// it succeeds, Next does not fail. It does not move the reader. An entry
// must hold at least its header map: an empty entry fails the batch.
func (e *Entries) Count() (int, error) {
	r := e.r
	n := 0
	var scratch Msg
	for r.i < len(r.b) {
		content, err := r.bin()
		if err == nil && len(content) == 0 {
			err = errEmptyEntry
		}
		if err == nil {
			err = scratch.readFields(&reader{b: content}, false)
		}
		if err != nil {
			return 0, decodeErr("batch entry %d: %v", e.i+uint64(n), err)
		}
		n++
	}
	if n == 0 && e.i == 0 {
		return 0, decodeErr("%v", errNoEntry)
	}
	return n, nil
}

// Next decodes the next entry into m, replacing its contents; it reports
// false when every entry has been read. Errors wrap [spmesh.ErrDecode].
func (e *Entries) Next(m *Msg) (bool, error) {
	if e.r.i >= len(e.r.b) {
		if e.i == 0 {
			return false, decodeErr("%v", errNoEntry)
		}
		return false, nil
	}
	if err := e.next(m); err != nil {
		return false, decodeErr("batch entry %d: %v", e.i, err)
	}
	e.i++
	return true, nil
}

func (e *Entries) next(m *Msg) error {
	content, err := e.r.bin()
	if err != nil {
		return err
	}
	b := e.batch
	*m = Msg{
		Kind: KindPublish, Topic: b.Topic, ID: b.ID, Time: b.Time, Pub: b.Pub, Seq: b.Seq + e.i,
		Attempt: b.Attempt, Deadline: b.Deadline, Code: b.Code, Err: b.Err, From: b.From, Flags: b.Flags,
	}
	binary.BigEndian.PutUint64(m.ID[8:], binary.BigEndian.Uint64(b.ID[8:])+e.i)
	r := reader{b: content}
	return m.fields(&r)
}

// bin reads a msgpack bin (not a str) and returns a slice of the frame.
func (r *reader) bin() ([]byte, error) { return r.bytes(false) }
