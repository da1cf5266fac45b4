package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/metrics"
	"github.com/spmesh/spmesh/survey"
	"github.com/urfave/cli/v3"
)

// statsFlags are the flags of the commands that survey the stats
// responders (stats, top).
func statsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: flagTimeout, Aliases: []string{"t"}, Value: 2 * time.Second,
			Usage: "how long one stats survey collects answers"},
	}
}

// statsSurveyor is a stats survey of the mesh: the surveyor advertised on
// metrics.StatsService and the number of responders the mesh announced.
type statsSurveyor struct {
	s         *session
	sv        *survey.Surveyor
	announced int
}

// openStats joins the mesh and waits (at most --wait) until the stats
// responders it announces are connected. It fails with exitNoAnswer when
// none is announced.
func openStats(ctx context.Context, cmd *cli.Command) (*statsSurveyor, error) {
	s, err := openMesh(ctx, cmd)
	if err != nil {
		return nil, err
	}
	sv, err := survey.NewSurveyor(survey.WithDiscovery(s.node, metrics.StatsService), survey.WithMaxMessageSize(metrics.MaxStatsMessage))
	if err != nil {
		s.close()
		return nil, err
	}
	st := &statsSurveyor{s: s, sv: sv}
	for _, m := range s.members(ctx) {
		for _, ep := range m.Endpoints {
			if ep.Service == metrics.StatsService && ep.Role == spmesh.RoleRespondent {
				st.announced++
			}
		}
	}
	if st.announced == 0 {
		st.close()
		return nil, withCode(exitNoAnswer, errors.New("nobody answers stats: no member runs a stats responder (metrics.ServeMesh, or spmesh agent)"))
	}
	err = s.waitFor(ctx, func() bool { return sv.Stats().Peers >= st.announced })
	if err != nil && !errors.Is(err, errWaited) {
		st.close()
		return nil, err
	}
	s.logf("%d of %d stats responders connected", sv.Stats().Peers, st.announced)
	return st, nil
}

func (st *statsSurveyor) close() {
	st.sv.Close()
	st.s.close()
}

// query runs one stats survey.
func (st *statsSurveyor) query(ctx context.Context, service string) (*metrics.MeshStats, error) {
	return metrics.QueryMesh(ctx, st.sv, service, survey.WithTimeout(st.s.cmd.Duration(flagTimeout)))
}

// warnMissing reports on stderr who did not answer and who answered an
// error.
func (st *statsSurveyor) warnMissing(ms *metrics.MeshStats) {
	if len(ms.Missing) > 0 {
		st.s.warnf("no stats from %s", strings.Join(ms.Missing, ", "))
	}
	for _, from := range slices.Sorted(maps.Keys(ms.Errors)) {
		st.s.warnf("stats from %s: %s", from, ms.Errors[from])
	}
}

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:      "stats",
		Usage:     "ask every node of the mesh for its sockets' figures (one stats survey)",
		ArgsUsage: "[SERVICE]",
		Description: `stats joins the mesh, surveys the stats responders (every node that runs
metrics.ServeMesh, and spmesh agent) on the reserved service _spmesh.stats,
and prints per node its members by state, then per socket (only SERVICE's,
if given) the figures since the socket opened: sent, received, dropped,
peers, in flight, and the other non-zero figures of its type (see the
metrics package for the names). It needs no extra port: the survey runs over
the mesh itself.

It waits (at most --wait) until the responders the mesh announces are
connected, collects answers for at most --timeout, and names on stderr the
nodes that did not answer. A node lists at most 64 sockets and 16 peers per
socket (the rest are counted as omitted). --json prints one document:
{"nodes": [{"node", "time", "members", "discovery", "sockets": [{"service",
"role", "values", "peers"}]}], "missing": [...]}.

Exits with 5 when no node answered, 4 when SERVICE is given and no node has
a socket of it.`,
		Flags: flags(meshFlags(), statsFlags()),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.NArg() > 1 {
				return usagef("too many arguments: %q", cmd.Args().Slice())
			}
			service := cmd.Args().First()
			st, err := openStats(ctx, cmd)
			if err != nil {
				return err
			}
			defer st.close()
			ms, err := st.query(ctx, service)
			if err != nil {
				return err
			}
			st.warnMissing(ms)
			if st.s.json {
				if ms.Nodes == nil {
					ms.Nodes = []metrics.Snapshot{}
				}
				if err := printJSON(st.s.stdout, ms); err != nil {
					return err
				}
			} else if err := printStats(st.s.stdout, ms); err != nil {
				return err
			}
			if len(ms.Nodes) == 0 {
				return withCode(exitNoAnswer, fmt.Errorf("nobody answered the stats survey (%d responders announced)", st.announced))
			}
			if service != "" && !slices.ContainsFunc(ms.Nodes, func(n metrics.Snapshot) bool { return len(n.Sockets) > 0 }) {
				return withCode(exitNoService, fmt.Errorf("no such service: no node has a socket of %q", service))
			}
			return nil
		},
	}
}

// Figures shown in their own columns; the others (non-zero) go to OTHER.
var statsColumns = []string{"messages_sent_total", "messages_received_total", "dropped_total", "peers", "in_flight"}

func printStats(w io.Writer, ms *metrics.MeshStats) error {
	tw := newTable(w, "NODE\tALIVE\tSUSPECT\tLEFT\tFAILED\tSOCKETS")
	for _, n := range ms.Nodes {
		socks := strconv.Itoa(len(n.Sockets))
		if n.Omitted > 0 {
			socks += fmt.Sprintf(" (+%d omitted)", n.Omitted)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", n.Node, n.Members.Alive, n.Members.Suspect, n.Members.Left, n.Members.Failed, socks)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "NODE\tSERVICE\tROLE\tSENT\tRECEIVED\tDROPPED\tPEERS\tIN-FLIGHT\tOTHER")
	for _, n := range ms.Nodes {
		for _, s := range n.Sockets {
			inFlight := "-"
			if v, ok := s.Values["in_flight"]; ok {
				inFlight = num(v)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Node, s.Service, s.Role,
				num(s.Value("messages_sent_total")), num(s.Value("messages_received_total")), num(s.Value("dropped_total")),
				num(s.Value("peers")), inFlight, otherFigures(s))
		}
	}
	return tw.Flush()
}

// otherFigures lists the non-zero figures of s not in their own column, and
// its peers' mean reply times.
func otherFigures(s metrics.SocketSnapshot) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(s.Values)) {
		if v := s.Values[k]; v != 0 && !slices.Contains(statsColumns, k) {
			out = append(out, strings.TrimSuffix(k, "_total")+"="+num(v))
		}
	}
	for _, p := range s.Peers {
		out = append(out, fmt.Sprintf("peer %s: done=%d failed=%d in_flight=%d/%d mean=%s", p.Addr, p.Done, p.Failed, p.InFlight, p.Credit, seconds(p.MeanReplySeconds)))
	}
	if s.PeersOmitted > 0 {
		out = append(out, fmt.Sprintf("+%d peers omitted", s.PeersOmitted))
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, " ")
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// seconds formats a duration in seconds, rounded for reading.
func seconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

const flagHTTP = "http"

// agentFlags are the agent's observability flags.
func agentFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagHTTP, Category: "observability",
			Usage: "serve /metrics (Prometheus), /healthz, /members and /services (JSON) on `host:port` (port 0 picks one)"},
	}
}

// observer is the agent's stats responder and HTTP server.
type observer struct {
	resp     *survey.Respondent
	srv      *http.Server
	httpAddr string // the HTTP server's address, "" without --http
	done     chan struct{}
}

// observe makes the agent's node answer stats surveys and, with --http,
// serves its metrics and the mesh's members and services over HTTP.
func observe(s *session) (*observer, error) {
	c := metrics.NewCollector()
	if err := c.AddNode(s.node); err != nil {
		return nil, err
	}
	o := &observer{}
	var err error
	if o.resp, err = metrics.ServeMesh(s.node, c); err != nil {
		return nil, err
	}
	addr := s.cmd.String(flagHTTP)
	if addr == "" {
		return o, nil
	}
	if _, _, err := splitHostPort(addr, "--http"); err != nil {
		o.resp.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		o.resp.Close()
		return nil, fmt.Errorf("--http %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(c))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if s.node.MemberCounts().Alive == 0 { // closed
			http.Error(w, "node closed", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /members", func(w http.ResponseWriter, _ *http.Request) {
		ms := s.node.Members()
		if ms == nil {
			http.Error(w, "node closed", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, membersJSON(ms))
	})
	mux.HandleFunc("GET /services", func(w http.ResponseWriter, r *http.Request) {
		want := map[string]bool{}
		for _, sv := range r.URL.Query()["service"] {
			want[sv] = true
		}
		writeJSON(w, servicesJSON(serviceEndpoints(s.node.Members(), want)))
	})
	o.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}
	o.httpAddr = ln.Addr().String()
	o.done = make(chan struct{})
	go func() {
		defer close(o.done)
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.warnf("http: %v", err)
		}
	}()
	return o, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	printJSON(w, v)
}

// close stops the HTTP server (a second at most for requests in flight)
// and the stats responder.
func (o *observer) close() {
	if o.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if o.srv.Shutdown(ctx) != nil {
			o.srv.Close()
		}
		<-o.done
	}
	o.resp.Close()
}
