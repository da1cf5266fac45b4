package sock

import (
	"go.nanomsg.org/mangos/v3"
)

// onPipe adds a hook called on every connection event.
func (so *Socket) onPipe(f func(mangos.PipeEvent, mangos.Pipe)) {
	so.mu.Lock()
	so.pipeHooks = append(so.pipeHooks, f)
	so.mu.Unlock()
}

func (so *Socket) pipeEvent(ev mangos.PipeEvent, p mangos.Pipe) {
	so.mu.Lock()
	if d := p.Dialer(); d != nil {
		if so.hungup[d] && ev == mangos.PipeEventAttached {
			// A dial that completed after Hangup: drop the connection.
			// (Closing in the Attaching hook would deadlock mangos.)
			delete(so.hungup, d)
			defer p.Close()
		}
		for _, dl := range so.dialers {
			if dl.d == d {
				if ev == mangos.PipeEventAttached {
					dl.pipe = p
				} else if ev == mangos.PipeEventDetached && dl.pipe == p {
					dl.pipe = nil
				}
			}
		}
	}
	hooks := so.pipeHooks
	so.mu.Unlock()
	switch ev {
	case mangos.PipeEventAttached:
		so.peers.Add(1)
	case mangos.PipeEventDetached:
		so.peers.Add(-1)
	}
	so.wake.signal()
	for _, h := range hooks {
		h(ev, p)
	}
}

// Peers is the number of established connections.
func (so *Socket) Peers() int { return int(so.peers.Load()) }
