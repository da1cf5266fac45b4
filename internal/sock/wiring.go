package sock

import (
	"cmp"
	"fmt"
	"net"
	"strings"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/logx"
)

// Wiring says how a socket takes part in discovery: a binder advertises
// itself in role Bind; a connector dials every endpoint advertised in role
// Watch; a socket with Announce advertises its name (Settings.Name) in that
// role, for peers that want to know who is there (survey respondents).
// Any may be empty.
type Wiring struct {
	Bind     spmesh.Role
	Watch    spmesh.Role
	Announce spmesh.Role
	// Before, if set, runs on the socket before any listen or dial (e.g.
	// a subscriber's first subscriptions, announced on connecting). Its
	// error is returned by Open as it is: the Socket methods it calls
	// translate their own.
	Before func(*Socket) error
	// Bare: the socket speaks bare frames (WithBareFrames). Its endpoints
	// are advertised with Endpoint.Bare set, and it dials only the watched
	// endpoints whose framing matches its own (see bare_discovery.go).
	Bare bool
}

func (so *Socket) wire(w Wiring) error {
	s := &so.Settings
	for _, a := range s.Listen {
		if _, err := so.Listen(a); err != nil {
			return err
		}
	}
	for _, a := range s.Dial {
		if err := so.Dial(a); err != nil {
			return err
		}
	}
	if s.Registry == nil {
		return nil
	}
	if w.Bind != "" {
		if len(s.Listen) == 0 {
			// With TLS configured, never plaintext by default.
			scheme := "tcp://"
			if so.pol.server != nil {
				scheme = "tls+tcp://"
			} else if so.pol.secure {
				return Invalid("a binder wired by discovery with TLS configured needs a server TLS config (a certificate) to listen; none was given")
			}
			if _, err := so.Listen(scheme + net.JoinHostPort(s.Registry.AdvertiseHost(), "0")); err != nil {
				return err
			}
		}
		so.mu.Lock()
		bound := append([]string(nil), so.bound...)
		so.mu.Unlock()
		for _, a := range bound {
			wd, err := s.Registry.Advertise(spmesh.Endpoint{Service: s.Service, Role: w.Bind, Addr: advertisable(a, s.Registry.AdvertiseHost()), Bare: w.Bare})
			if err != nil {
				return fmt.Errorf("spmesh: advertise %s: %w", s.Service, err)
			}
			so.mu.Lock()
			so.withdraw = append(so.withdraw, wd)
			so.mu.Unlock()
		}
	}
	if w.Announce != "" && s.Name != "" {
		wd, err := s.Registry.Advertise(spmesh.Endpoint{Service: s.Service, Role: w.Announce, Addr: spmesh.NameAddrPrefix + s.Name, Bare: w.Bare})
		if err != nil {
			return fmt.Errorf("spmesh: announce %s: %w", s.Service, err)
		}
		so.mu.Lock()
		so.withdraw = append(so.withdraw, wd)
		so.mu.Unlock()
	}
	if w.Watch != "" {
		updates, stop, err := s.Registry.Watch(s.Service, w.Watch)
		if err != nil {
			return fmt.Errorf("spmesh: watch %s: %w", s.Service, err)
		}
		so.mu.Lock()
		so.stopWatch = stop
		so.mu.Unlock()
		so.wg.Add(1)
		go so.follow(updates, w.Bare)
	}
	return nil
}

// advertisable replaces an unspecified listen host (0.0.0.0, ::) by host.
func advertisable(addr, host string) string {
	i := strings.Index(addr, "://")
	if i < 0 || !strings.HasPrefix(addr, "tcp") && !strings.HasPrefix(addr, "tls+tcp") && !strings.HasPrefix(addr, "ws") {
		return addr
	}
	hp := addr[i+3:]
	rest := ""
	if j := strings.IndexByte(hp, '/'); j >= 0 {
		hp, rest = hp[:j], hp[j:]
	}
	h, port, err := net.SplitHostPort(hp)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
		return addr[:i+3] + net.JoinHostPort(host, port) + rest
	}
	return addr
}

// follow keeps exactly one dial to each advertised endpoint the policy
// allows and whose framing is bare exactly when this socket's is; each
// refused one is counted and logged once for as long as it stays
// advertised.
func (so *Socket) follow(updates <-chan []spmesh.Endpoint, bare bool) {
	defer so.wg.Done()
	dialed := map[string]bool{}
	refused := map[spmesh.Endpoint]bool{}
	for eps := range updates {
		want := make(map[string]bool, len(eps))
		seen := make(map[spmesh.Endpoint]bool, len(refused))
		for _, ep := range eps {
			if why := cmp.Or(framingMismatch(ep, bare), so.pol.refuse(ep)); why != "" {
				if !refused[ep] {
					so.refused(ep, why)
				}
				seen[ep] = true
				continue
			}
			want[ep.Addr] = true
			if !dialed[ep.Addr] {
				if err := so.dial(ep.Addr, ep.Node); err != nil {
					so.C.SetLastError(ep.Addr, err)
					so.logWarn(ep.Addr, "spmesh: dial discovered endpoint", logx.Endpoint, ep.Addr, logx.Node, ep.Node, logx.Err, err)
					continue
				}
				dialed[ep.Addr] = true
			}
		}
		refused = seen
		for a := range dialed {
			if !want[a] {
				so.Hangup(a)
				delete(dialed, a)
			}
		}
	}
}
