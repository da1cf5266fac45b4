package sock

import "go.nanomsg.org/mangos/v3"

// Mangos is so's mangos socket, for tests that drive it directly.
func Mangos(so *Socket) mangos.Socket { return so.m }
