package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spmesh/spmesh"
)

type goneNode struct {
	addr  string
	at    time.Time
	left  bool
	tries int       // failed re-joins
	next  time.Time // next re-join
}

// leftWindow is how long a node that left gracefully is still re-joined.
const leftWindow = time.Minute

// maxRejoinBackoff caps the interval between re-joins of a gone member's
// address, in re-join intervals.
const maxRejoinBackoff = 32

// Join joins the mesh through addrs ("host:port") and reports how many
// answered. It returns ctx.Err() if ctx ends first (the attempt goes on in
// the background until TCPTimeout), and an error when none answered.
func (n *Node) Join(ctx context.Context, addrs ...string) (int, error) {
	type result struct {
		k   int
		err error
	}
	ch := make(chan result, 1)
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return 0, spmesh.ErrClosed
	}
	n.wg.Add(1) // under n.mu: never concurrent with Close's Wait at zero
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		k, err := n.join(addrs)
		if k > 0 {
			n.spreadJoined()
		}
		ch <- result{k, err}
	}()
	select {
	case r := <-ch:
		return r.k, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// join joins addrs concurrently; it never panics after Close. Its error
// names every address that failed and why.
func (n *Node) join(addrs []string) (int, error) {
	var (
		mu   sync.Mutex
		ok   int
		errs []error
		wg   sync.WaitGroup
	)
	for _, a := range addrs {
		wg.Go(func() {
			k, err := n.ml.Join([]string{a})
			mu.Lock()
			defer mu.Unlock()
			ok += k
			if err != nil && k == 0 {
				errs = append(errs, joinErr(a, err))
			}
		})
	}
	wg.Wait()
	if n.isClosed() {
		return ok, spmesh.ErrClosed
	}
	if ok == 0 && len(addrs) > 0 {
		return 0, fmt.Errorf("%w: discovery: no seed answered: %v", spmesh.ErrNoPeers, errors.Join(errs...))
	}
	return ok, nil
}

// joinErr names the seed and the cause of a failed join, with a hint when
// the seed hung up on us: memberlist drops a stream with another label or
// key without a word.
func joinErr(addr string, err error) error {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	msg = strings.TrimPrefix(msg, "1 error occurred: * ")
	if errors.Is(err, io.EOF) || strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset") {
		msg += " (the seed hung up: a different Config.Label or gossip key?)"
	}
	return fmt.Errorf("seed %s: %s", addr, msg)
}

// rejoinLoop joins the seeds at start, retrying until one answers, then
// every RejoinInterval re-joins seeds and recently gone peers that are not
// members now, so that a mesh split for longer than DeadTimeout merges.
func (n *Node) rejoinLoop() {
	defer n.wg.Done()
	joined := len(n.cfg.Seeds) == 0
	if !joined {
		if _, err := n.join(n.cfg.Seeds); err == nil {
			joined = true
			n.spreadJoined()
		} else if !errors.Is(err, spmesh.ErrClosed) {
			n.log.Warn("spmesh: discovery: join seeds (retrying in the background)", "err", err)
		}
	}
	if n.cfg.RejoinInterval < 0 {
		return
	}
	t := time.NewTicker(n.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		}
		addrs := n.rejoinTargets(time.Now())
		if len(addrs) == 0 {
			continue
		}
		k, err := n.join(addrs)
		if errors.Is(err, spmesh.ErrClosed) {
			return
		}
		if k > 0 {
			n.spreadJoined()
		}
		if k > 0 && !joined {
			joined = true
			n.log.Info("spmesh: discovery: joined", "answered", k)
		}
	}
}

// rejoinTargets lists the seeds and the recently gone peers' addresses that
// are not live members now.
func (n *Node) rejoinTargets(now time.Time) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.leaving || n.closed {
		return nil
	}
	live := map[string]bool{n.addr: true}
	for _, p := range n.peers {
		live[p.addr] = true
	}
	seen := map[string]bool{}
	var out []string
	add := func(a string) {
		if !live[a] && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, s := range n.cfg.Seeds {
		add(s)
	}
	for name, g := range n.gone {
		window := n.cfg.RejoinWindow
		if g.left {
			window = min(window, leftWindow)
		}
		if now.Sub(g.at) > window {
			delete(n.gone, name)
			continue
		}
		if now.Before(g.next) {
			continue
		}
		// Back off: a gone member's address may be anybody's now (or
		// never was the member's), so it gets fewer and fewer dials, up
		// to one every maxRejoinBackoff re-join intervals.
		g.tries++
		g.next = now.Add(n.cfg.RejoinInterval * time.Duration(min(1<<min(g.tries-1, 10), maxRejoinBackoff)))
		n.gone[name] = g
		add(g.addr)
	}
	return out
}
