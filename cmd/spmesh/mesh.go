package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/urfave/cli/v3"
)

// Flag names shared by several commands.
const (
	flagJoin      = "join"
	flagBind      = "bind"
	flagAdvertise = "advertise"
	flagKey       = "key"
	flagLabel     = "label"
	flagName      = "name"
	flagDial      = "dial"
	flagListen    = "listen"
	flagWait      = "wait"
	flagJSON      = "json"
	flagCodec     = "codec"
	flagVerbose   = "verbose"
	flagBare      = "bare"
)

// bareCommands are the commands whose pattern package speaks bare SP
// frames (reqrep.WithBareFrames); --bare on any other is refused.
var bareCommands = map[string]bool{"req": true, "reply": true, "pub": true, "sub": true, "survey": true, "respond": true, "push": true, "pull": true}

// meshFlags are the flags of every command that joins the mesh.
func meshFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringSliceFlag{Name: flagJoin, Aliases: []string{"j"}, Category: "mesh",
			Usage:   "join the mesh through this seed `host:port` (repeatable, or comma separated)",
			Sources: cli.EnvVars("SPMESH_JOIN")},
		&cli.StringFlag{Name: flagBind, Category: "mesh",
			Usage:   "gossip on `host:port` (default 127.0.0.1:0 when every seed is on loopback, else 0.0.0.0:0; agent: 0.0.0.0:7946)",
			Sources: cli.EnvVars("SPMESH_BIND")},
		&cli.StringFlag{Name: flagAdvertise, Category: "mesh",
			Usage: "tell peers to reach this node at `host[:port]` (NAT, or a bind to 0.0.0.0 on a host without a private IP)"},
		&cli.StringFlag{Name: flagKey, Category: "mesh",
			Usage:   "gossip encryption key, `base64` of 16, 24 or 32 bytes",
			Sources: cli.EnvVars("SPMESH_KEY")},
		&cli.StringFlag{Name: flagLabel, Category: "mesh",
			Usage:   "mesh `label`: meshes sharing a network stay apart",
			Sources: cli.EnvVars("SPMESH_LABEL")},
		&cli.StringFlag{Name: flagName, Category: "mesh",
			Usage: "this node's `name` in the mesh (default: host name plus a random suffix)"},
		&cli.DurationFlag{Name: flagWait, Category: "mesh", Value: 2 * time.Second,
			Usage: "how long to wait for the mesh to show a service or peers before giving up"},
		&cli.BoolFlag{Name: flagJSON, Category: "output",
			Usage: "print JSON (one document, or one object per line for streams)"},
		&cli.BoolFlag{Name: flagVerbose, Aliases: []string{"v"}, Category: "output",
			Config: cli.BoolConfig{Count: new(int)},
			Usage:  "print progress to stderr: the node's gossip address, readiness, peers (-vv: library logs)"},
	}, tlsFlags()...)
}

// addrFlags are the flags of the commands that open a socket.
func addrFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: flagDial, Category: "addresses",
			Usage: "also dial this `address` (e.g. tcp://10.0.0.5:7001; repeatable)"},
		&cli.StringSliceFlag{Name: flagListen, Category: "addresses",
			Usage: "also listen on this `address` (e.g. tcp://0.0.0.0:7001; repeatable)"},
		&cli.StringFlag{Name: flagCodec, Category: "output", Value: "msgpack",
			Usage: "payload codec: msgpack or raw", Sources: cli.EnvVars("SPMESH_CODEC")},
		&cli.BoolFlag{Name: flagBare, Category: "addresses",
			Usage: "bare SP frames, no spmesh envelope, to talk to NNG/nanomsg programs (nngcat, pynng): " +
				"the body is the raw bytes (pub/sub: the topic's bytes, then the body's); refused by the commands that need the envelope"},
	}
}

func flags(groups ...[]cli.Flag) []cli.Flag {
	var all []cli.Flag
	for _, g := range groups {
		all = append(all, g...)
	}
	return all
}

// session is one command's run: its output settings and its mesh node.
type session struct {
	cmd     *cli.Command
	stdout  io.Writer
	stderr  io.Writer
	json    bool
	verbose int
	codec   spmesh.Codec
	bare    bool            // --bare: no envelope, raw bodies
	header  spmesh.Header   // --header, for the commands that send
	node    *discovery.Node // nil without a mesh
	tlsPol  spmesh.TLSPolicy
	tls     *tls.Config // both sides, for sockets wired by address alone; nil: no TLS
	dial    []string
	listen  []string
}

// newSession reads the common flags. It joins nothing yet.
func newSession(cmd *cli.Command) (*session, error) {
	s := &session{
		cmd:     cmd,
		stdout:  cmd.Root().Writer,
		stderr:  cmd.Root().ErrWriter,
		json:    cmd.Bool(flagJSON),
		verbose: cmd.Count(flagVerbose),
		codec:   spmesh.Msgpack,
	}
	var err error
	if s.tlsPol, s.tls, err = tlsSettings(cmd); err != nil {
		return nil, err
	}
	if hasFlag(cmd, flagCodec) {
		switch c := cmd.String(flagCodec); c {
		case "msgpack":
		case "raw":
			s.codec = spmesh.Raw
		default:
			return nil, usagef("--codec %q: want msgpack or raw", c)
		}
		s.dial = cmd.StringSlice(flagDial)
		s.listen = cmd.StringSlice(flagListen)
	}
	if hasFlag(cmd, flagBare) && cmd.Bool(flagBare) {
		if !bareCommands[cmd.Name] {
			return nil, usagef("--bare: %s cannot send bare frames (its messages need the spmesh envelope); only %s support --bare", cmd.Name, bareCommandNames())
		}
		if cmd.IsSet(flagCodec) && s.codec != spmesh.Raw {
			return nil, usagef("--bare with --codec %s: a bare body is the raw bytes, no codec (leave --codec and SPMESH_CODEC out, or use raw)", cmd.String(flagCodec))
		}
		if hasFlag(cmd, flagHeader) && len(cmd.StringSlice(flagHeader)) > 0 {
			return nil, usagef("--bare with --header: bare frames carry no headers")
		}
		s.bare, s.codec = true, spmesh.Raw
	}
	return s, nil
}

func hasFlag(cmd *cli.Command, name string) bool {
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// logf prints a progress line to stderr with -v.
func (s *session) logf(format string, args ...any) {
	if s.verbose > 0 {
		fmt.Fprintf(s.stderr, "spmesh: "+format+"\n", args...)
	}
}

// warnf prints a warning to stderr.
func (s *session) warnf(format string, args ...any) {
	fmt.Fprintf(s.stderr, "spmesh: "+format+"\n", args...)
}

// meshWanted reports whether the command should join (or start) a mesh:
// seeds were given, or a gossip address to bind (a node without seeds is
// the first of a new mesh).
func (s *session) meshWanted() bool {
	return len(s.cmd.StringSlice(flagJoin)) > 0 || s.cmd.IsSet(flagBind)
}

// openMesh starts a command that needs the mesh (members, services,
// watch): it reads the common flags and joins the mesh. The caller closes
// the session.
func openMesh(ctx context.Context, cmd *cli.Command) (*session, error) {
	s, err := newSession(cmd)
	if err != nil {
		return nil, err
	}
	if err := s.needMesh(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// inMesh is the Action of a command that needs the mesh: run gets the
// session of openMesh, closed when run returns.
func inMesh(run func(ctx context.Context, cmd *cli.Command, s *session) error) cli.ActionFunc {
	return func(ctx context.Context, cmd *cli.Command) error {
		s, err := openMesh(ctx, cmd)
		if err != nil {
			return err
		}
		defer s.close()
		return run(ctx, cmd, s)
	}
}

// newTable starts a table on w, its columns aligned (tab-separated cells),
// with the header line given; Flush ends it.
func newTable(w io.Writer, header string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	return tw
}

// openPattern starts a command that talks through a pattern socket and
// takes SERVICE first: it reads the common flags and the --header to send
// (for the commands that send), joins the mesh (or checks the --dial and
// --listen addresses), and splits SERVICE off the arguments (in a mesh;
// there is none with addresses alone). The caller closes the session.
func openPattern(ctx context.Context, cmd *cli.Command) (s *session, service string, args []string, err error) {
	if s, err = newSession(cmd); err != nil {
		return nil, "", nil, err
	}
	if hasFlag(cmd, flagHeader) {
		if s.header, err = headers(cmd); err != nil {
			return nil, "", nil, err
		}
	}
	if err := s.needWiring(ctx); err != nil {
		return nil, "", nil, err
	}
	if service, args, err = s.serviceArg(cmd.Args().Slice()); err != nil {
		s.close()
		return nil, "", nil, err
	}
	return s, service, args, nil
}

// openService is openPattern for the commands that take nothing after
// SERVICE.
func openService(ctx context.Context, cmd *cli.Command) (*session, string, error) {
	s, service, rest, err := openPattern(ctx, cmd)
	if err != nil {
		return nil, "", err
	}
	if len(rest) > 0 {
		s.close()
		return nil, "", usagef("too many arguments: %q", rest)
	}
	return s, service, nil
}

// wiring returns the options that wire a pattern socket: discovery of
// service in a mesh, then the --listen and --dial addresses. discover,
// listen, dial, withTLS and requireTLS are the pattern package's
// WithDiscovery, WithListen, WithDial, WithTLS and WithRequireTLS. In a
// mesh the node's TLS policy (from the TLS flags) applies to the socket;
// without one the TLS flags are given to the socket itself.
func wiring[O any](s *session, service string, discover func(spmesh.Registry, string) O, listen, dial func(string) O,
	withTLS func(*tls.Config) O, requireTLS func() O) []O {
	var opts []O
	if s.node != nil {
		opts = append(opts, discover(s.node, service))
	} else {
		if s.tls != nil {
			opts = append(opts, withTLS(s.tls))
		}
		if s.tlsPol.Require {
			opts = append(opts, requireTLS())
		}
	}
	for _, a := range s.listen {
		opts = append(opts, listen(a))
	}
	for _, a := range s.dial {
		opts = append(opts, dial(a))
	}
	return opts
}

// needMesh joins the mesh, failing with a usage error when no seed was given.
func (s *session) needMesh(ctx context.Context) error {
	if !s.meshWanted() {
		return usagef("no mesh to join: give --join host:port (or SPMESH_JOIN)")
	}
	return s.joinMesh(ctx, "0.0.0.0:0")
}

// needWiring joins the mesh when asked to, and otherwise requires static
// addresses.
func (s *session) needWiring(ctx context.Context) error {
	if s.meshWanted() {
		return s.joinMesh(ctx, "0.0.0.0:0")
	}
	if len(s.dial) == 0 && len(s.listen) == 0 {
		return usagef("nothing to talk to: give --join host:port (or SPMESH_JOIN) to join a mesh, or --dial/--listen addresses")
	}
	return nil
}

// joinMesh starts the node and joins the seeds. defaultBind applies when
// --bind is not given and a seed is not on loopback.
func (s *session) joinMesh(ctx context.Context, defaultBind string) error {
	cmd := s.cmd
	seeds := cmd.StringSlice(flagJoin)
	for i, sd := range seeds {
		seeds[i] = strings.TrimSpace(sd)
	}
	bind := cmd.String(flagBind)
	if bind == "" {
		bind = defaultBind
		if len(seeds) > 0 && allLoopback(seeds) {
			bind = "127.0.0.1:0"
		}
	}
	host, port, err := splitHostPort(bind, "--bind")
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return usagef("--bind %q: want an IP address", bind)
	}
	cfg := discovery.LANConfig()
	if ip.IsLoopback() {
		// One machine: fast timings.
		cfg = discovery.LocalConfig()
	}
	cfg.BindAddr, cfg.BindPort = host, port
	cfg.Seeds = seeds
	cfg.Name = cmd.String(flagName)
	if cfg.Name == "" {
		cfg.Name = certName(s.tls)
	}
	cfg.Label = cmd.String(flagLabel)
	cfg.TLS = s.tlsPol
	if a := cmd.String(flagAdvertise); a != "" {
		if h, p, err := net.SplitHostPort(a); err == nil {
			n, err := strconv.Atoi(p)
			if err != nil {
				return usagef("--advertise %q: bad port", a)
			}
			cfg.AdvertiseAddr, cfg.AdvertisePort = h, n
		} else {
			cfg.AdvertiseAddr = a
		}
	}
	if k := cmd.String(flagKey); k != "" {
		key, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			return usagef("--key: not base64: %v", err)
		}
		cfg.SecretKey = key
	}
	if s.verbose > 1 {
		cfg.Logger = slog.New(slog.NewTextHandler(s.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	node, err := discovery.New(cfg)
	if err != nil {
		if errors.Is(err, spmesh.ErrInvalidOption) {
			return withCode(exitUsage, err)
		}
		return withCode(exitNoJoin, fmt.Errorf("cannot start a mesh node on %s: %w", bind, err))
	}
	if len(seeds) > 0 {
		// A seed that refuses or rejects us fails at once; a slow one (a
		// loaded machine) gets a few gossip timeouts before we give up.
		jctx, cancel := context.WithTimeout(ctx, max(cfg.TCPTimeout+time.Second, 10*time.Second))
		_, err := node.Join(jctx, seeds...)
		cancel()
		if err != nil {
			node.Close()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return withCode(exitNoJoin, explainJoin(fmt.Errorf("cannot join the mesh through %s: %w", strings.Join(seeds, ", "), err)))
		}
	}
	s.node = node
	s.logf("node %s gossiping on %s (%d members)", node.Name(), node.Addr(), len(node.Members()))
	return nil
}

// close leaves the mesh gracefully (bounded, whatever ctx the command had).
func (s *session) close() {
	if s.node == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.node.Leave(ctx); err != nil && !errors.Is(err, spmesh.ErrClosed) {
		s.logf("leave: %v", err)
	} else {
		s.logf("left the mesh")
	}
}

// waitService waits until the mesh shows an endpoint of service in role,
// for at most --wait; it fails with exitNoService. Without a mesh it
// returns at once.
func (s *session) waitService(ctx context.Context, service string, role spmesh.Role) error {
	if s.node == nil {
		return nil
	}
	err := s.waitFor(ctx, func() bool {
		// Only a peer of the same framing counts: the socket dials no other.
		return slices.ContainsFunc(s.node.Endpoints(service, role), func(ep spmesh.Endpoint) bool { return ep.Bare == s.bare })
	})
	if errors.Is(err, errWaited) {
		as := roleName(role)
		if s.bare {
			as = "bare " + as
		}
		err := fmt.Errorf("no such service: nobody in the mesh advertises %q as %s (waited %v)", service, as, s.cmd.Duration(flagWait))
		// Records are pulled from each member over the node's TLS policy
		// and key: a refused pull hides a member's services, so say why,
		// member by member.
		if fails := s.node.PullFailures(); len(fails) > 0 {
			names := slices.Sorted(maps.Keys(fails))
			why := make([]string, len(names))
			for i, name := range names {
				why[i] = name + " at " + fails[name]
			}
			err = fmt.Errorf("%w (records of %d member(s) could not be pulled: %s)", err, len(names), strings.Join(why, "; "))
		} else if st := s.node.Stats(); st.LastError != "" {
			err = fmt.Errorf("%w (last discovery error: %s)", err, st.LastError)
		}
		return withCode(exitNoService, err)
	}
	return err
}

var errWaited = errors.New("waited too long")

// waitFor polls cond until it holds, for at most --wait. It returns
// errWaited when the time is up, ctx.Err() when ctx ends.
func (s *session) waitFor(ctx context.Context, cond func() bool) error {
	deadline := time.NewTimer(s.cmd.Duration(flagWait))
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			if cond() {
				return nil
			}
			return errWaited
		case <-tick.C:
		}
	}
	return nil
}

func roleName(r spmesh.Role) string {
	switch r {
	case spmesh.RoleReplier:
		return "replier"
	case spmesh.RolePuller:
		return "puller"
	case spmesh.RolePublisher:
		return "publisher"
	case spmesh.RoleSurveyor:
		return "surveyor"
	case spmesh.RoleWorker:
		return "worker"
	}
	return string(r)
}

func splitHostPort(hp, what string) (string, int, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, usagef("%s %q: want host:port", what, hp)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, usagef("%s %q: bad port", what, hp)
	}
	if h == "" {
		h = "0.0.0.0"
	}
	return h, n, nil
}

func allLoopback(addrs []string) bool {
	for _, a := range addrs {
		h := a
		if hh, _, err := net.SplitHostPort(a); err == nil {
			h = hh
		}
		ip := net.ParseIP(h)
		if h != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return false
		}
	}
	return true
}

// serviceArg splits the positional arguments of a pattern command: with a
// mesh the first is the service; with addresses alone there is none.
func (s *session) serviceArg(args []string) (service string, rest []string, err error) {
	if s.node == nil {
		return "", args, nil
	}
	if len(args) == 0 || args[0] == "" {
		return "", nil, usagef("missing SERVICE")
	}
	return args[0], args[1:], nil
}
