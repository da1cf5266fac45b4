package sock

import (
	"sync"

	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol"
)

// qlenOption is the option handling spmesh's send-only protocols (Fanout,
// Spread) share: they take the write queue length (messages per connection)
// and answer their private option name with themselves, so that PubOf and
// PushOf find them behind a mangos socket.
type qlenOption struct {
	mu      *sync.Mutex // the protocol's own lock, which guards maxMsgs
	maxMsgs *int
	self    any
	selfOpt string
}

func (q qlenOption) set(name string, v any) error {
	if name != mangos.OptionWriteQLen {
		return protocol.ErrBadOption
	}
	n, ok := v.(int)
	if !ok || n < 1 {
		return protocol.ErrBadValue
	}
	q.mu.Lock()
	*q.maxMsgs = n
	q.mu.Unlock()
	return nil
}

func (q qlenOption) get(name string) (any, error) {
	switch name {
	case q.selfOpt:
		return q.self, nil
	case mangos.OptionRaw:
		return false, nil
	case mangos.OptionWriteQLen:
		q.mu.Lock()
		defer q.mu.Unlock()
		return *q.maxMsgs, nil
	}
	return nil, protocol.ErrBadOption
}
