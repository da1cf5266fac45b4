package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/metrics"
	"github.com/urfave/cli/v3"
)

const (
	flagInterval = "interval"
	flagOnce     = "once"
)

func topCommand() *cli.Command {
	return &cli.Command{
		Name:      "top",
		Usage:     "a live view of the mesh: per node and socket, messages per second, drops, in flight, slow peers",
		ArgsUsage: "[SERVICE]",
		Description: `top runs a stats survey (see "spmesh help stats") every --interval and shows
the rates between two consecutive answers of each node, by that node's
clock: per socket (only SERVICE's, if given) messages sent and received per
second, drops per second, in flight, peers, and its slow peers (requesters
and producers: peers whose mean reply time is at least twice the median of
the socket's other peers). A node or socket seen in one survey only shows no rates
yet. On a terminal the screen is redrawn; otherwise each sample is printed
after the last, separated by a blank line. It runs until interrupted.

--once takes two samples one --interval apart, prints the rates between them
and exits (5 when no node answered both). --json prints one document per
sample: {"time", "interval_seconds", "nodes": [{"node", "members",
"sockets": [{"service", "role", "peers", "sent_per_second",
"received_per_second", "dropped_per_second", "in_flight", "slow_peers"}]}],
"missing": [...]}.`,
		Flags: flags(meshFlags(), statsFlags(), []cli.Flag{
			&cli.DurationFlag{Name: flagInterval, Aliases: []string{"i"}, Value: 2 * time.Second,
				Usage: "time between two samples"},
			&cli.BoolFlag{Name: flagOnce, Usage: "print one sample, computed over one --interval, and exit"},
		}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.NArg() > 1 {
				return usagef("too many arguments: %q", cmd.Args().Slice())
			}
			interval := cmd.Duration(flagInterval)
			if interval <= 0 {
				return usagef("--interval %v: want a positive duration", interval)
			}
			service := cmd.Args().First()
			st, err := openStats(ctx, cmd)
			if err != nil {
				return err
			}
			defer st.close()
			clear := !st.s.json && !cmd.Bool(flagOnce) && isTerminal(st.s.stdout)
			tick := time.NewTicker(interval)
			defer tick.Stop()
			var prev *metrics.MeshStats
			for {
				ms, err := st.query(ctx, service)
				if err != nil {
					if ctx.Err() != nil && !cmd.Bool(flagOnce) {
						return nil // interrupted: the normal end of top
					}
					return err
				}
				if prev != nil {
					sample := rates(prev, ms, time.Now())
					if err := printTop(st.s, sample, clear); err != nil {
						return err
					}
					if cmd.Bool(flagOnce) {
						st.warnMissing(ms)
						if len(sample.Nodes) == 0 {
							return withCode(exitNoAnswer, fmt.Errorf("no node answered both stats surveys (%d responders announced)", st.announced))
						}
						return nil
					}
				}
				prev = ms
				select {
				case <-ctx.Done():
					if cmd.Bool(flagOnce) {
						return ctx.Err()
					}
					return nil
				case <-tick.C:
				}
			}
		},
	}
}

// topSample is one sample of top: the rates between two stats surveys.
type topSample struct {
	Time     time.Time `json:"time"`
	Interval float64   `json:"interval_seconds"` // the longest interval of a node between its two snapshots
	Nodes    []topNode `json:"nodes"`
	Missing  []string  `json:"missing,omitempty"` // nodes in the first survey missing from the second
}

type topNode struct {
	Node    string                 `json:"node"`
	Members discovery.MemberCounts `json:"members"`
	Sockets []topSocket            `json:"sockets"`
}

type topSocket struct {
	Service   string                 `json:"service"`
	Role      string                 `json:"role"`
	Peers     int                    `json:"peers"`
	Sent      float64                `json:"sent_per_second"`
	Received  float64                `json:"received_per_second"`
	Dropped   float64                `json:"dropped_per_second"`
	InFlight  *float64               `json:"in_flight,omitempty"` // types without the figure: none
	SlowPeers []metrics.PeerSnapshot `json:"slow_peers,omitempty"`
}

// rates computes a sample from two consecutive surveys: the nodes (and
// sockets) in both, each over its own interval.
func rates(prev, cur *metrics.MeshStats, now time.Time) topSample {
	out := topSample{Time: now, Nodes: []topNode{}}
	before := map[string]*metrics.Snapshot{}
	for i := range prev.Nodes {
		before[prev.Nodes[i].Node] = &prev.Nodes[i]
	}
	seen := map[string]bool{}
	for _, n := range cur.Nodes {
		seen[n.Node] = true
		p := before[n.Node]
		if p == nil {
			continue
		}
		dt := n.Time.Sub(p.Time).Seconds()
		if dt <= 0 {
			continue // a restarted node, or a clock step: no rate this time
		}
		out.Interval = max(out.Interval, dt)
		tn := topNode{Node: n.Node, Members: n.Members, Sockets: []topSocket{}}
		for _, s := range n.Sockets {
			i := slices.IndexFunc(p.Sockets, func(o metrics.SocketSnapshot) bool { return o.Service == s.Service && o.Role == s.Role })
			if i < 0 {
				continue
			}
			o := p.Sockets[i]
			rate := func(name string) float64 {
				d := s.Value(name) - o.Value(name)
				if d < 0 { // the socket was replaced: count from zero
					d = s.Value(name)
				}
				return d / dt
			}
			ts := topSocket{
				Service: s.Service, Role: s.Role, Peers: int(s.Value("peers")),
				Sent: rate("messages_sent_total"), Received: rate("messages_received_total"), Dropped: rate("dropped_total"),
				SlowPeers: slowPeers(s.Peers),
			}
			if v, ok := s.Values["in_flight"]; ok {
				ts.InFlight = &v
			}
			tn.Sockets = append(tn.Sockets, ts)
		}
		out.Nodes = append(out.Nodes, tn)
	}
	for _, n := range prev.Nodes {
		if !seen[n.Node] {
			out.Missing = append(out.Missing, n.Node)
		}
	}
	return out
}

// slowPeers returns the peers whose mean reply time is at least twice the
// median of the other peers that replied (so with two peers, one at least
// twice as slow as the other is slow).
func slowPeers(ps []metrics.PeerSnapshot) []metrics.PeerSnapshot {
	var slow []metrics.PeerSnapshot
	others := make([]float64, 0, len(ps))
	for i, p := range ps {
		if p.Done == 0 || p.MeanReplySeconds <= 0 {
			continue
		}
		others = others[:0]
		for j, o := range ps {
			if j != i && o.Done > 0 {
				others = append(others, o.MeanReplySeconds)
			}
		}
		if len(others) == 0 {
			continue
		}
		slices.Sort(others)
		median := others[len(others)/2]
		if len(others)%2 == 0 {
			median = (others[len(others)/2-1] + others[len(others)/2]) / 2
		}
		if p.MeanReplySeconds >= 2*median {
			slow = append(slow, p)
		}
	}
	return slow
}

func printTop(s *session, sample topSample, clear bool) error {
	if s.json {
		return printJSON(s.stdout, sample)
	}
	var b strings.Builder
	if clear {
		b.WriteString("\x1b[H\x1b[2J")
	}
	fmt.Fprintf(&b, "spmesh top  %s  %d nodes, rates over %.1fs", sample.Time.Format("15:04:05"), len(sample.Nodes), sample.Interval)
	if len(sample.Missing) > 0 {
		fmt.Fprintf(&b, "  (no answer: %s)", strings.Join(sample.Missing, ", "))
	}
	b.WriteString("\n\n")
	tw := newTable(&b, "NODE\tALIVE\tSUSPECT\tLEFT\tFAILED")
	for _, n := range sample.Nodes {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", n.Node, n.Members.Alive, n.Members.Suspect, n.Members.Left, n.Members.Failed)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "NODE\tSERVICE\tROLE\tPEERS\tSENT/s\tRECV/s\tDROP/s\tIN-FLIGHT\tSLOW PEERS")
	for _, n := range sample.Nodes {
		for _, so := range n.Sockets {
			inFlight := "-"
			if so.InFlight != nil {
				inFlight = num(*so.InFlight)
			}
			slow := "-"
			if len(so.SlowPeers) > 0 {
				var ps []string
				for _, p := range so.SlowPeers {
					ps = append(ps, fmt.Sprintf("%s (%s)", p.Addr, seconds(p.MeanReplySeconds)))
				}
				slow = strings.Join(ps, " ")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.1f\t%.1f\t%.1f\t%s\t%s\n", n.Node, so.Service, so.Role, so.Peers, so.Sent, so.Received, so.Dropped, inFlight, slow)
		}
	}
	tw.Flush()
	if !clear {
		b.WriteString("\n")
	}
	_, err := io.WriteString(s.stdout, b.String())
	return err
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
