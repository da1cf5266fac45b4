package discovery

import (
	"fmt"
	"strings"
	"sync"

	"github.com/spmesh/spmesh"
)

// Static is a registry driven by hand: endpoints are added and removed by
// calls, plus whatever sockets sharing it Advertise in-process. It gossips
// nothing and needs no network; use it in tests, examples, and deployments
// that know their addresses. The zero value is not usable: call [NewStatic].
//
// An endpoint is identified by its service, role, address and node; adding
// one twice keeps one copy, and withdrawing an advertisement removes only
// that advertisement.
type Static struct {
	host string

	mu     sync.Mutex
	tls    spmesh.TLSPolicy
	eps    map[spmesh.Endpoint]int // endpoint -> how many times added or advertised
	hub    hub
	closed bool
}

var _ spmesh.SecureRegistry = (*Static)(nil)

// NewStatic returns a Static registry holding eps. Sockets that advertise
// through it listen on host (default "127.0.0.1" when host is empty).
func NewStatic(host string, eps ...spmesh.Endpoint) *Static {
	if host == "" {
		host = "127.0.0.1"
	}
	s := &Static{host: host, eps: map[spmesh.Endpoint]int{}, hub: newHub()}
	s.Add(eps...)
	return s
}

// SetTLSPolicy sets the transport security of the sockets wired through s
// from now on (see [spmesh.TLSPolicy] and Config.TLS); sockets read it when
// they are built, so set it before wiring them. It is validated like
// Config.TLS: an error wrapping ErrInvalidOption names the field at fault.
func (s *Static) SetTLSPolicy(p spmesh.TLSPolicy) error {
	if err := checkTLSPolicy(p); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tls = p
	return nil
}

// TLSPolicy returns the policy set by SetTLSPolicy (the zero value,
// plaintext, until then).
func (s *Static) TLSPolicy() spmesh.TLSPolicy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tls
}

// AdvertiseHost returns the host given to NewStatic.
func (s *Static) AdvertiseHost() string { return s.host }

// Add adds endpoints; watchers of their service and role get a new
// snapshot. It returns ErrClosed after Close, and an error wrapping
// ErrInvalidOption for an endpoint without a service, role or address, or
// with an address of no spmesh transport. Static is driven by its owner
// and trusted: any transport is accepted (inproc:// and ipc:// included),
// on any host, with no cap; the checks that [Node] applies to other
// members' endpoints do not apply.
func (s *Static) Add(eps ...spmesh.Endpoint) error {
	for _, ep := range eps {
		if err := checkEndpoint(ep); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return spmesh.ErrClosed
	}
	for _, ep := range eps {
		if !knownScheme(ep.Addr) {
			return fmt.Errorf("%w: endpoint address %q: want tcp://, tls+tcp://, ipc://, inproc://, ws://, wss:// or name:", spmesh.ErrInvalidOption, ep.Addr)
		}
	}
	changed := map[key]bool{}
	for _, ep := range eps {
		if s.eps[ep]++; s.eps[ep] == 1 {
			changed[key{ep.Service, ep.Role}] = true
		}
	}
	s.publish(changed)
	return nil
}

// Remove removes endpoints, whether added by hand or advertised; removing an
// unknown endpoint is a no-op.
func (s *Static) Remove(eps ...spmesh.Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := map[key]bool{}
	for _, ep := range eps {
		if _, ok := s.eps[ep]; ok {
			delete(s.eps, ep)
			changed[key{ep.Service, ep.Role}] = true
		}
	}
	s.publish(changed)
}

// Endpoints returns every endpoint held, sorted.
func (s *Static) Endpoints() []spmesh.Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]spmesh.Endpoint, 0, len(s.eps))
	for ep := range s.eps {
		out = append(out, ep)
	}
	sortEndpoints(out)
	return out
}

// Advertise adds ep until the returned withdraw is called (withdraw is
// idempotent and removes only what this call added).
func (s *Static) Advertise(ep spmesh.Endpoint) (withdraw func(), err error) {
	if err := s.Add(ep); err != nil {
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if n, ok := s.eps[ep]; ok {
				if n > 1 {
					s.eps[ep] = n - 1
				} else {
					delete(s.eps, ep)
					s.publish(map[key]bool{{ep.Service, ep.Role}: true})
				}
			}
		})
	}, nil
}

// Watch reports the endpoints of service in role: the current set at once,
// then the full set after every change. Snapshots are coalesced: a slow
// reader sees only the latest. The channel is closed after stop or Close.
func (s *Static) Watch(service string, role spmesh.Role) (<-chan []spmesh.Endpoint, func(), error) {
	if service == "" || role == "" {
		return nil, nil, fmt.Errorf("%w: watch needs a service and a role", spmesh.ErrInvalidOption)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, spmesh.ErrClosed
	}
	k := key{service, role}
	w := s.hub.add(k, s.snapshot(k))
	return w.ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.hub.remove(k, w)
	}, nil
}

// Close closes every watcher's channel; later calls return ErrClosed. It is
// idempotent.
func (s *Static) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.hub.close()
	return nil
}

func (s *Static) publish(changed map[key]bool) {
	for k := range changed {
		if s.hub.watched(k) {
			s.hub.publish(k, s.snapshot(k))
		}
	}
}

func (s *Static) snapshot(k key) []spmesh.Endpoint {
	var out []spmesh.Endpoint
	for ep := range s.eps {
		if ep.Service == k.service && ep.Role == k.role {
			out = append(out, ep)
		}
	}
	sortEndpoints(out)
	return out
}

// Limits on what an endpoint may hold, so that records stay small on the
// wire.
const (
	maxServiceLen = 255
	maxRoleLen    = 64
	maxAddrLen    = 512
)

func checkEndpoint(ep spmesh.Endpoint) error {
	switch {
	case ep.Service == "" || len(ep.Service) > maxServiceLen:
		return fmt.Errorf("%w: endpoint service %q: want 1 to %d bytes", spmesh.ErrInvalidOption, ep.Service, maxServiceLen)
	case ep.Role == "" || len(ep.Role) > maxRoleLen:
		return fmt.Errorf("%w: endpoint role %q: want 1 to %d bytes", spmesh.ErrInvalidOption, ep.Role, maxRoleLen)
	case ep.Addr == "" || len(ep.Addr) > maxAddrLen:
		return fmt.Errorf("%w: endpoint address %q: want 1 to %d bytes", spmesh.ErrInvalidOption, ep.Addr, maxAddrLen)
	case strings.HasSuffix(string(ep.Role), bareSuffix):
		return fmt.Errorf("%w: endpoint role %q: the suffix %q is reserved (set Endpoint.Bare instead)", spmesh.ErrInvalidOption, ep.Role, bareSuffix)
	case ep.Bare && len(ep.Role)+len(bareSuffix) > maxRoleLen:
		return fmt.Errorf("%w: endpoint role %q: want 1 to %d bytes for a bare endpoint", spmesh.ErrInvalidOption, ep.Role, maxRoleLen-len(bareSuffix))
	}
	return nil
}

// knownScheme reports whether addr names a transport spmesh dials or
// listens on, or is a name (see spmesh.NameAddrPrefix).
func knownScheme(addr string) bool {
	if strings.HasPrefix(addr, spmesh.NameAddrPrefix) {
		return true
	}
	i := strings.Index(addr, "://")
	if i <= 0 {
		return false
	}
	switch addr[:i] {
	case "tcp", "tls+tcp", "ipc", "inproc", "ws", "wss":
		return true
	}
	return false
}
