package sock

import (
	"crypto/rand"
	"encoding/binary"
	"sync/atomic"

	"github.com/spmesh/spmesh/internal/wire"
)

// NewID returns a fresh message id: a random per-socket prefix and a counter.
func (so *Socket) NewID() wire.ID { return so.ids.next() }

type idGen struct {
	prefix uint64
	n      atomic.Uint64
}

func (g *idGen) init() {
	var b [16]byte
	rand.Read(b[:])
	g.prefix = binary.BigEndian.Uint64(b[:8])
	g.n.Store(binary.BigEndian.Uint64(b[8:]) >> 16)
}

func (g *idGen) next() (id wire.ID) {
	binary.BigEndian.PutUint64(id[:8], g.prefix)
	binary.BigEndian.PutUint64(id[8:], g.n.Add(1))
	return id
}

// RandomUint64 returns a random non-zero number (publisher ids).
func RandomUint64() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}
