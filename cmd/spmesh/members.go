package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/urfave/cli/v3"
)

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "run a mesh node (a seed for the other commands) until interrupted",
		Description: `agent starts a node, joins the seeds given with --join if any (with none it
starts a new mesh), prints its name and gossip address (the address the other
commands --join), and stays until SIGINT/SIGTERM, then leaves the mesh.
With -v it prints the mesh's events as they happen.

The gossip address defaults to 0.0.0.0:7946; --bind 127.0.0.1:0 picks a free
port on loopback.

The agent answers stats surveys (spmesh stats, spmesh top) with its node's
figures. With --http host:port it also serves, and prints as "http ADDR":
/metrics (Prometheus text: its node's discovery figures, members by state,
Go runtime and process), /healthz ("ok" while the node runs), /members and
/services (the JSON of members --json and services --json, this node
included; /services?service=NAME filters; the first call makes the node
fetch every member's records from then on). There is no authentication:
listen on loopback or a private address.`,
		Flags: flags(meshFlags(), agentFlags()),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			s, err := newSession(cmd)
			if err != nil {
				return err
			}
			if cmd.NArg() > 0 {
				return usagef("agent takes no arguments")
			}
			if err := s.joinMesh(ctx, fmt.Sprintf("0.0.0.0:%d", discovery.DefaultPort)); err != nil {
				return err
			}
			defer s.close()
			n := s.node
			obs, err := observe(s)
			if err != nil {
				return err
			}
			defer obs.close()
			if s.json {
				out := map[string]any{"name": n.Name(), "addr": n.Addr()}
				if obs.httpAddr != "" {
					out["http"] = obs.httpAddr
				}
				printJSON(s.stdout, out)
			} else {
				fmt.Fprintf(s.stdout, "%s %s\n", n.Name(), n.Addr())
				if obs.httpAddr != "" {
					fmt.Fprintf(s.stdout, "http %s\n", obs.httpAddr)
				}
			}
			for {
				select {
				case <-ctx.Done():
					return nil
				case ev, ok := <-n.Events():
					if !ok {
						return nil
					}
					if s.verbose > 0 {
						fmt.Fprintln(s.stderr, "spmesh: event", eventText(ev))
					}
				}
			}
		},
	}
}

func membersCommand() *cli.Command {
	return &cli.Command{
		Name:  "members",
		Usage: "list the mesh's nodes, their addresses and the services each advertises",
		Description: `members joins the mesh, waits (at most --wait) until it knows every member's
full service records, prints the live members other than itself, and leaves.
State is "alive", or "syncing" while a member's records are still being
fetched. Services are listed as service/role@address; a role ends in
"+bare" when the endpoint speaks bare SP frames (--bare).`,
		Flags: flags(meshFlags()),
		Action: inMesh(func(ctx context.Context, cmd *cli.Command, s *session) error {
			ms := s.members(ctx)
			if s.json {
				return printJSON(s.stdout, membersJSON(ms))
			}
			tw := newTable(s.stdout, "NAME\tADDR\tSTATE\tSERVICES")
			for _, m := range ms {
				var svcs []string
				for _, ep := range m.Endpoints {
					if !reservedService(ep.Service) {
						svcs = append(svcs, fmt.Sprintf("%s/%s@%s", ep.Service, roleText(ep), ep.Addr))
					}
				}
				if len(svcs) == 0 {
					svcs = []string{"-"}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, m.Addr, memberState(m), strings.Join(svcs, " "))
			}
			return tw.Flush()
		}),
	}
}

func servicesCommand() *cli.Command {
	return &cli.Command{
		Name:      "services",
		Usage:     "list the services advertised in the mesh, grouped by service",
		ArgsUsage: "[SERVICE...]",
		Description: `services joins the mesh, waits (at most --wait) until it knows every member's
full service records, prints every advertised endpoint grouped by service
(only the SERVICEs named, if any), and leaves. Roles: pub (publisher),
rep (replier), pull (puller), work (worker), surveyor; "+bare" marks an
endpoint that speaks bare SP frames (only --bare sockets dial it). Connectors
(subscribers, requesters, pushers, respondents) do not advertise.`,
		Flags: flags(meshFlags()),
		Action: inMesh(func(ctx context.Context, cmd *cli.Command, s *session) error {
			want := map[string]bool{}
			for _, a := range cmd.Args().Slice() {
				want[a] = true
			}
			eps := serviceEndpoints(s.members(ctx), want)
			if s.json {
				return printJSON(s.stdout, servicesJSON(eps))
			}
			tw := newTable(s.stdout, "SERVICE\tROLE\tNODE\tADDR")
			for i, ep := range eps {
				name := ep.Service
				if i > 0 && eps[i-1].Service == ep.Service {
					name = ""
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, roleText(ep), ep.Node, ep.Addr)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(want) > 0 && len(eps) == 0 {
				return withCode(exitNoService, fmt.Errorf("no such service: nobody advertises %s", strings.Join(cmd.Args().Slice(), ", ")))
			}
			return nil
		}),
	}
}

// members returns the live members other than this node once their records
// are complete (or --wait has passed).
func (s *session) members(ctx context.Context) []discovery.Member {
	var ms []discovery.Member
	s.waitFor(ctx, func() bool {
		ms = ms[:0]
		complete := true
		for _, m := range s.node.Members() {
			if m.Local {
				continue
			}
			complete = complete && m.Complete
			ms = append(ms, m)
		}
		return complete
	})
	return ms
}

func memberState(m discovery.Member) string {
	if m.Complete {
		return "alive"
	}
	return "syncing"
}

// membersJSON is the JSON form of members, shared by members --json and
// the agent's /members.
func membersJSON(ms []discovery.Member) []map[string]any {
	out := make([]map[string]any, 0, len(ms))
	for _, m := range ms {
		out = append(out, map[string]any{
			"name": m.Name, "addr": m.Addr, "state": memberState(m),
			"services": endpointsJSON(m.Endpoints),
		})
	}
	return out
}

// serviceEndpoints lists the endpoints of the members, only the services
// in want if any (spmesh's own, reserved services only when named), sorted
// by service, role, node and address.
func serviceEndpoints(ms []discovery.Member, want map[string]bool) []spmesh.Endpoint {
	var eps []spmesh.Endpoint
	for _, m := range ms {
		for _, ep := range m.Endpoints {
			if len(want) == 0 && !reservedService(ep.Service) || want[ep.Service] {
				eps = append(eps, ep)
			}
		}
	}
	slices.SortFunc(eps, func(a, b spmesh.Endpoint) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Role, b.Role),
			cmp.Compare(a.Node, b.Node), cmp.Compare(a.Addr, b.Addr))
	})
	return eps
}

// servicesJSON is the JSON form of sorted endpoints, grouped by service,
// shared by services --json and the agent's /services.
func servicesJSON(eps []spmesh.Endpoint) []map[string]any {
	out := []map[string]any{}
	for _, ep := range eps {
		if len(out) == 0 || out[len(out)-1]["service"] != ep.Service {
			out = append(out, map[string]any{"service": ep.Service, "endpoints": []map[string]any{}})
		}
		last := out[len(out)-1]
		last["endpoints"] = append(last["endpoints"].([]map[string]any),
			map[string]any{"role": ep.Role, "bare": ep.Bare, "node": ep.Node, "addr": ep.Addr})
	}
	return out
}

// roleText is an endpoint's role as members and services print it: with
// "+bare" when the endpoint speaks bare SP frames (Endpoint.Bare), which
// only a socket with --bare (WithBareFrames) dials.
func roleText(ep spmesh.Endpoint) string {
	if ep.Bare {
		return string(ep.Role) + "+bare"
	}
	return string(ep.Role)
}

// reservedService reports whether a service is spmesh's own (the stats
// responders' _spmesh.stats): members and services hide them unless named.
func reservedService(name string) bool { return strings.HasPrefix(name, "_spmesh.") }

func endpointsJSON(eps []spmesh.Endpoint) []map[string]any {
	out := make([]map[string]any, 0, len(eps))
	for _, ep := range eps {
		if reservedService(ep.Service) {
			continue
		}
		out = append(out, map[string]any{"service": ep.Service, "role": ep.Role, "bare": ep.Bare, "addr": ep.Addr})
	}
	return out
}

func watchCommand() *cli.Command {
	return &cli.Command{
		Name:  "watch",
		Usage: "print the mesh's events as they happen: join, leave, failed, update, service added/removed",
		Description: `watch joins the mesh and prints one line per event until interrupted (or
--count events): first the members and services already there (as join and
service-added events), then every change. Events that a slow terminal
cannot take are dropped and reported.`,
		Flags: flags(meshFlags(), []cli.Flag{
			&cli.IntFlag{Name: flagCount, Aliases: []string{"n"}, Usage: "exit after this many events (0: until interrupted)"},
		}),
		Action: inMesh(func(ctx context.Context, cmd *cli.Command, s *session) error {
			count, seen := cmd.Int(flagCount), 0
			var dropped uint64
			for {
				select {
				case <-ctx.Done():
					return nil
				case ev, ok := <-s.node.Events():
					if !ok {
						return nil
					}
					if ev.Node == s.node.Name() {
						continue
					}
					if d := s.node.DroppedEvents(); d != dropped {
						s.warnf("%d events dropped (output too slow)", d-dropped)
						dropped = d
					}
					if s.json {
						m := map[string]any{"time": ev.Time.Format(time.RFC3339Nano), "type": ev.Type.String(), "node": ev.Node, "addr": ev.Addr}
						if ev.Endpoint.Service != "" {
							m["service"], m["role"], m["endpoint"] = ev.Endpoint.Service, ev.Endpoint.Role, ev.Endpoint.Addr
						}
						if err := printJSON(s.stdout, m); err != nil {
							return err
						}
					} else {
						fmt.Fprintf(s.stdout, "%s %s\n", ev.Time.Format("15:04:05.000"), eventText(ev))
					}
					seen++
					if count > 0 && seen >= count {
						return nil
					}
				}
			}
		}),
	}
}

func eventText(ev discovery.Event) string {
	t := fmt.Sprintf("%-15s %s %s", ev.Type, ev.Node, ev.Addr)
	if ev.Endpoint.Service != "" {
		t += fmt.Sprintf(" %s/%s@%s", ev.Endpoint.Service, ev.Endpoint.Role, ev.Endpoint.Addr)
	}
	return t
}
