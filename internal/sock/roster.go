package sock

import (
	"slices"
	"strings"
	"sync"

	"github.com/spmesh/spmesh"
)

// Roster follows the names announced for a service in a role (see
// Wiring.Announce): the survey's expected respondents.
type Roster struct {
	mu    sync.Mutex
	names []string
	known bool
	stop  func()
	once  sync.Once
	done  chan struct{}
}

// NewRoster watches reg for the names announced for service in role.
func NewRoster(reg spmesh.Registry, service string, role spmesh.Role) (*Roster, error) {
	updates, stop, err := reg.Watch(service, role)
	if err != nil {
		return nil, err
	}
	r := &Roster{stop: stop, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for eps := range updates {
			names := make([]string, 0, len(eps))
			for _, ep := range eps {
				if n, ok := strings.CutPrefix(ep.Addr, spmesh.NameAddrPrefix); ok && n != "" {
					names = append(names, n)
				}
			}
			slices.Sort(names)
			r.mu.Lock()
			r.names, r.known = slices.Compact(names), true
			r.mu.Unlock()
		}
	}()
	return r, nil
}

// Names returns the names announced now (a copy), or nil before the
// registry's first report.
func (r *Roster) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.known {
		return nil
	}
	return append([]string{}, r.names...)
}

// Close stops following the registry.
func (r *Roster) Close() {
	r.once.Do(r.stop)
	<-r.done
}
