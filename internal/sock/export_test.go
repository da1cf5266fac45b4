package sock

import "go.nanomsg.org/mangos/v3"

// Mangos is so's mangos socket, for tests that drive it directly.
func Mangos(so *Socket) mangos.Socket { return so.m }

// SubQueued is the bytes of frames so's SUB receive queue holds.
func SubQueued(so *Socket) int64 {
	v, _ := so.m.GetOption(optQueued)
	n, _ := v.(int64)
	return n
}
