package sock

import (
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sptcp"
	"go.nanomsg.org/mangos/v3"
)

type dialer struct {
	d    mangos.Dialer
	pipe mangos.Pipe
}

// Listen listens on addr and returns the bound address (port 0 resolved).
func (so *Socket) Listen(addr string) (string, error) {
	if err := CheckAddr(addr); err != nil {
		return "", err
	}
	if err := so.pol.checkListen(addr); err != nil {
		return "", err
	}
	if so.closed.Load() {
		return "", spmesh.ErrClosed
	}
	l, err := so.m.NewListener(so.transportAddr(addr), so.endpointOptions(addr, so.pol.listenConfig(addr)))
	if err != nil {
		return "", fmt.Errorf("spmesh: listen %s: %w", addr, Err(err))
	}
	if err := l.Listen(); err != nil {
		return "", fmt.Errorf("spmesh: listen %s: %w", addr, Err(err))
	}
	bound := sptcp.PublicAddr(l.Address())
	so.mu.Lock()
	so.listeners = append(so.listeners, l)
	so.bound = append(so.bound, bound)
	so.mu.Unlock()
	return bound, nil
}

// transportAddr maps tcp:// and tls+tcp:// to spmesh's batching transport
// (same wire format) unless the stock mangos transport was chosen.
func (so *Socket) transportAddr(addr string) string {
	if so.Settings.StockTCP {
		return addr
	}
	return sptcp.Addr(addr)
}

// endpointOptions carries the TLS configuration tc to the transports that
// use it (mangos accepts it only per dialer or listener), and to spmesh's
// TCP transport the connection limits and the observer that counts and
// logs what happens on its connections.
func (so *Socket) endpointOptions(addr string, tc *tls.Config) map[string]any {
	opts := map[string]any{}
	if tc != nil && isSecure(addr) {
		opts[mangos.OptionTLSConfig] = tc
	}
	if !so.Settings.StockTCP && (strings.HasPrefix(addr, "tcp://") || strings.HasPrefix(addr, "tls+tcp://")) {
		opts[sptcp.OptionObserver] = so.obs
		opts[sptcp.OptionLimits] = so.Settings.limits()
	}
	return opts
}

// Dial connects to addr in the background, reconnecting with backoff for as
// long as the socket is open; dialing an address already dialed is a no-op.
// With TLS required, a plaintext addr is an error.
func (so *Socket) Dial(addr string) error {
	if err := so.pol.checkDial(addr); err != nil {
		return err
	}
	return so.dial(addr, "")
}

// dial dials addr, advertised by node ("" for a static dial): with node
// verification on, the TLS handshake requires node's name in the
// certificate.
func (so *Socket) dial(addr, node string) error {
	if err := CheckAddr(addr); err != nil {
		return err
	}
	so.mu.Lock()
	defer so.mu.Unlock()
	if so.closed.Load() {
		return spmesh.ErrClosed
	}
	if _, ok := so.dialers[addr]; ok {
		return nil
	}
	d, err := so.m.NewDialer(so.transportAddr(addr), so.endpointOptions(addr, so.pol.dialConfig(addr, node)))
	if err != nil {
		return fmt.Errorf("spmesh: dial %s: %w", addr, Err(err))
	}
	so.dialers[addr] = &dialer{d: d}
	if err := d.Dial(); err != nil {
		delete(so.dialers, addr)
		return fmt.Errorf("spmesh: dial %s: %w", addr, Err(err))
	}
	return nil
}

// Hangup stops dialing addr and closes its connection.
func (so *Socket) Hangup(addr string) {
	so.mu.Lock()
	dl, ok := so.dialers[addr]
	if ok {
		delete(so.dialers, addr)
		if len(so.hungup) >= 1024 {
			// Bound the memory of a long-lived socket whose peers churn:
			// a dial still in flight this long after its hangup is gone.
			clear(so.hungup)
		}
		so.hungup[dl.d] = true
	}
	so.mu.Unlock()
	if !ok {
		return
	}
	dl.d.Close()
	if dl.pipe != nil {
		dl.pipe.Close()
	}
}
