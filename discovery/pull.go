package discovery

import (
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/logx"
)

// pullLoop pulls members' records (see exchange.go): from members whose
// metadata announced a gen this node has not pulled, from members never
// pulled, and every refresh from members with watched endpoints (a
// liveness check). It runs on kicks and on a timer that retries failed
// pulls.
func (n *Node) pullLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.wantRetry)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-n.kickFetch:
		case <-t.C:
		}
		type job struct {
			p    *peer
			name string
			addr string
		}
		var jobs []job
		now := time.Now()
		n.mu.Lock()
		interest := n.interest()
		for _, p := range n.peers {
			if p.pulling || now.Before(p.nextPull) {
				continue
			}
			stale := !p.pulled || p.recGen < p.gen
			if stale && interested(p, interest) || (p.pulled && now.Sub(p.lastPull) >= n.refresh && n.watchedPeer(p)) {
				p.pulling = true
				jobs = append(jobs, job{p, p.node.Name, p.addr})
			}
		}
		n.mu.Unlock()
		for _, j := range jobs {
			select {
			case <-n.done:
				n.mu.Lock()
				j.p.pulling = false
				n.mu.Unlock()
				return
			case n.sends <- struct{}{}:
			}
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				defer func() { <-n.sends }()
				gen, eps, err := n.pull(j.name, j.addr, n.pullTimeout)
				n.pulled(j.p, gen, eps, err)
			}()
		}
	}
}

// interest returns the hints of the services this node uses (watched,
// or asked for by Endpoints), nil when it wants every member's records.
// Called with n.mu held.
func (n *Node) interest() map[uint32]bool {
	if n.wantAll || len(n.wanted) >= maxWanted {
		return nil
	}
	m := map[uint32]bool{}
	for s := range n.wanted {
		m[serviceHint(s)] = true
	}
	for k := range n.hub.watches {
		m[serviceHint(k.service)] = true
	}
	return m
}

// interested reports whether p's records are wanted: it serves a service
// of interest, or it gave no hints, or everything is wanted (interest
// nil).
func interested(p *peer, interest map[uint32]bool) bool {
	if interest == nil || !p.hinted {
		return true
	}
	for _, h := range p.hints {
		if interest[h] {
			return true
		}
	}
	return false
}

// watchedPeer reports whether p has endpoints somebody watches. Called
// with n.mu held.
func (n *Node) watchedPeer(p *peer) bool {
	for _, ep := range p.eps {
		if n.hub.watched(key{ep.Service, ep.Role}) {
			return true
		}
	}
	return false
}

// pulled takes in the result of a pull from p.
func (n *Node) pulled(p *peer, gen uint64, eps []spmesh.Endpoint, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p.pulling = false
	if n.closed || n.peers[p.node.Name] != p {
		return // gone meanwhile: its records are not taken
	}
	now := time.Now()
	if err != nil {
		p.fails++
		// Back off (up to the refresh interval), so that members that do
		// not answer cannot keep every pull slot busy with timeouts.
		p.nextPull = now.Add(min(n.wantRetry<<min(p.fails-1, 6), max(n.refresh, n.wantRetry)))
		n.pullErrors.Add(1)
		var pe *exchangeError
		var ne *recordsNameError
		switch {
		case errors.As(err, &ne):
			n.recordsRefused.Add(1)
		case errors.As(err, &pe):
			n.handshakeErrors.Add(1)
		}
		n.setLastError(fmt.Errorf("records of %s (%s): %v", p.node.Name, p.addr, err))
		p.pullErr = fmt.Sprintf("%s: %v", p.addr, err)
		// Nobody listens there (its process is gone), or it cannot be
		// trusted: its endpoints go until it answers again. A timeout is
		// not taken as death (packet loss makes them): failure detection
		// decides.
		if errors.Is(err, syscall.ECONNREFUSED) || pe != nil || ne != nil {
			if len(p.eps) > 0 {
				n.log.Info("spmesh: discovery: member's records unavailable, its endpoints withdrawn until it answers", logx.Node, p.node.Name, logx.Remote, p.addr, logx.Err, err)
			}
			p.hidden = true
			n.setPeerEps(p, nil, p.full)
		}
		if pe != nil || ne != nil {
			n.logs.Log(n.log, slog.LevelWarn, p.node.Name, "spmesh: discovery: records refused", logx.Node, p.node.Name, logx.Remote, p.addr, logx.Err, err)
		}
		return
	}
	p.fails, p.pullErr = 0, ""
	same := p.pulled && !p.hidden && gen == p.recGen
	p.pulled, p.recGen, p.lastPull, p.hidden = true, gen, now, false
	if gen < p.gen {
		p.nextPull = now.Add(n.wantRetry) // the metadata announced a newer gen: pull again
	}
	if same {
		p.full = gen >= p.gen // a liveness check: the records are those listed
		return
	}
	n.setPeerEps(p, n.admit(p, eps), gen >= p.gen)
}

// admit keeps the endpoints of member p that pass the checks of
// checkRemoteEndpoint and the caps (Config.MaxEndpointsPerMember, and
// Config.MaxEndpointsPerService counting the other members' endpoints);
// refusals are counted and logged once per member per 10 s. Called with
// n.mu held; eps sorted.
func (n *Node) admit(p *peer, eps []spmesh.Endpoint) []spmesh.Endpoint {
	out := make([]spmesh.Endpoint, 0, min(len(eps), n.cfg.MaxEndpointsPerMember))
	var refused int
	var first error
	var firstEp spmesh.Endpoint
	refuse := func(ep spmesh.Endpoint, err error) {
		if refused == 0 {
			first, firstEp = err, ep
		}
		refused++
	}
	var perKey map[key]int
	for _, ep := range eps {
		if err := checkRemoteEndpoint(ep, p.ip, n.cfg.EndpointCIDRs); err != nil {
			refuse(ep, err)
			continue
		}
		if len(out) >= n.cfg.MaxEndpointsPerMember {
			refuse(ep, errPerMember)
			continue
		}
		k := key{ep.Service, ep.Role}
		if perKey == nil {
			perKey = map[key]int{}
		}
		if _, ok := perKey[k]; !ok {
			perKey[k] = n.countOthers(p, k)
		}
		if perKey[k] >= n.cfg.MaxEndpointsPerService {
			refuse(ep, errPerSvc)
			continue
		}
		perKey[k]++
		out = append(out, ep)
	}
	if refused > 0 {
		n.endpointsRefused.Add(uint64(refused))
		err := fmt.Errorf("%d endpoints of %s refused, e.g. %s %s %q: %v", refused, p.node.Name, firstEp.Service, firstEp.Role, firstEp.Addr, first)
		n.setLastError(err)
		n.logs.Log(n.log, slog.LevelWarn, p.node.Name, "spmesh: discovery: endpoints refused", logx.Node, p.node.Name, logx.Remote, p.addr,
			"refused", refused, logx.Service, firstEp.Service, logx.Role, firstEp.Role, logx.Endpoint, firstEp.Addr, logx.Reason, first)
	}
	return out
}

// countOthers counts the endpoints of k held by members other than p.
// Called with n.mu held.
func (n *Node) countOthers(p *peer, k key) int {
	c := 0
	for _, q := range n.peers {
		if q == p {
			continue
		}
		for _, ep := range q.eps {
			if ep.Service == k.service && ep.Role == k.role {
				c++
			}
		}
	}
	return c
}
