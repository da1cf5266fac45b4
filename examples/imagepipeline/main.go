package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spmesh/spmesh/discovery"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// config is the command line.
type config struct {
	role        string
	join        string
	gossip      string
	gossipSet   bool // -gossip given explicitly
	name        string
	in          string
	out         string
	n           int
	workers     int
	concurrency int
	window      int
	transform   string
	thumb       int
	size        int
	work        time.Duration
	chaos       bool
	chaosSink   bool
	chaosProd   bool   // demo: SIGKILL the producer mid-run and restart it on its outbox
	outbox      string // with -role producer: the outbox file (pipeline.WithOutbox)
	runID       string
	summary     string
	logLevel    string
	verbose     bool
	child       bool
	secure      bool   // demo: a throwaway CA, certificates and gossip key; mutual TLS everywhere
	pki         string // with -role: the PKI directory (see secure.go)
	metrics     string // serve /metrics on this host:port (the demo: its own, then the next ports for its children)
}

// run parses args and runs the chosen role; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	var c config
	fs := flag.NewFlagSet("imagepipeline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.role, "role", "", "run one role: producer, worker or sink (default: the whole demo on this machine)")
	fs.StringVar(&c.join, "join", "", "a mesh member's gossip address (host:port) to join")
	fs.StringVar(&c.gossip, "gossip", ":7946", "with -role: where this process gossips (host:port; port 0 picks one)")
	fs.StringVar(&c.name, "name", "", "with -role: this process's name in the mesh (default: role-host-random)")
	fs.StringVar(&c.in, "in", "", "a directory of JPEG/PNG images (default: generate synthetic ones)")
	fs.StringVar(&c.out, "out", "", "output directory of the sink (default: a new directory under "+os.TempDir()+")")
	fs.IntVar(&c.n, "n", 60, "how many synthetic images to generate when -in is not given (twice as many with -chaos)")
	fs.IntVar(&c.workers, "workers", 3, "demo: how many worker processes to start")
	fs.IntVar(&c.concurrency, "concurrency", 2, "images one worker processes at once")
	fs.IntVar(&c.window, "window", 8, "jobs the producer has in flight at once (sized to the workers' total concurrency or a bit more)")
	fs.StringVar(&c.transform, "transform", "gray", "the transform besides the thumbnail: gray (grayscale copy) or ladder (1/2, 1/4, 1/8 sizes)")
	fs.IntVar(&c.size, "size", 640, "synthetic images: the width of the first one (the others are portrait and wide variations)")
	fs.IntVar(&c.thumb, "thumb", 160, "thumbnail size: the longer side, in pixels")
	fs.DurationVar(&c.work, "work", 100*time.Millisecond, "extra time a worker spends per image (simulated load, so the demo can be watched)")
	fs.BoolVar(&c.chaos, "chaos", false, "demo: kill a worker mid-run and start a new one")
	fs.BoolVar(&c.chaosSink, "chaos-sink", false, "demo: kill the sink mid-run and start a new one")
	fs.BoolVar(&c.chaosProd, "chaos-producer", false, "demo: kill the producer mid-run (SIGKILL) and start a new one on the same outbox")
	fs.StringVar(&c.outbox, "outbox", "", "with -role producer: keep unacked jobs in this crash-safe file (pipeline.WithOutbox) and the run's progress in FILE.progress; restart with the same file to resume an unfinished run (its run id is taken from there unless -run is given); the demo always uses one")
	fs.StringVar(&c.runID, "run", "", "with -role producer: the run id (default: time-based)")
	fs.StringVar(&c.summary, "summary", "", "also write the summary as JSON to this file")
	fs.StringVar(&c.logLevel, "log", "", "log level: debug, info, warn, error (default: info with -role, warn for the demo's children)")
	fs.BoolVar(&c.verbose, "v", false, "demo: show the children's info logs")
	fs.BoolVar(&c.child, "child", false, "internal: started by the demo's supervisor")
	fs.BoolVar(&c.secure, "secure", false, "demo: generate a throwaway CA, a certificate per process and a gossip key, and run everything over mutual TLS (plaintext refused, certificates must name their node)")
	fs.StringVar(&c.metrics, "metrics", "", "serve Prometheus /metrics on `host:port` (port 0 picks one; the demo serves its own there and gives its children the next ports, in start order)")
	fs.StringVar(&c.pki, "pki", "", "with -role: secure mode from this directory (ca.pem, gossip.key, NAME.pem, NAME-key.pem for -name NAME)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	nSet := false
	fs.Visit(func(f *flag.Flag) {
		c.gossipSet = c.gossipSet || f.Name == "gossip"
		nSet = nSet || f.Name == "n"
	})
	if c.chaos && !nSet && c.in == "" {
		// Leave the replacement worker time to join and take its share.
		c.n = 2 * c.n
	}
	if err := c.check(); err != nil {
		fmt.Fprintln(stderr, "imagepipeline:", err)
		return 2
	}

	// Ctrl-C and SIGTERM end a process gracefully. A child of the demo
	// ignores Ctrl-C (the terminal sends it to every process of the group):
	// its supervisor stops the children in order (producer, workers, sink)
	// with SIGTERM, so that work in hand can finish.
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if c.child {
		signal.Ignore(os.Interrupt)
		sigs = sigs[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	defer stop()
	var err error
	switch c.role {
	case "":
		err = supervise(ctx, c, stdout, stderr)
	case "producer":
		err = runProducer(ctx, c, stdout, c.logger(stderr))
	case "worker":
		err = runWorker(ctx, c, c.logger(stderr))
	case "sink":
		err = runSink(ctx, c, stdout, c.logger(stderr))
	}
	switch {
	case err == nil:
		return 0
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "imagepipeline: interrupted")
	default:
		fmt.Fprintln(stderr, "imagepipeline:", err)
	}
	return 1
}

const usage = `imagepipeline: a brokerless image-processing pipeline on spmesh.

With no flags it starts a sink, a producer and 3 workers as processes on this
machine, runs 60 synthetic images through them and prints a summary.
With -role it runs one role, to spread the pipeline over hosts:

  host A:  imagepipeline -role sink                  (prints its gossip address)
  host B:  imagepipeline -role worker -join A:7946
  host C:  imagepipeline -role producer -join A:7946 -in ./photos

Flags:
`

// check validates the flags and fills defaults.
func (c *config) check() error {
	switch c.role {
	case "", "producer", "worker", "sink":
	default:
		return fmt.Errorf("-role %q: want producer, worker or sink", c.role)
	}
	switch c.transform {
	case "gray", "ladder":
	default:
		return fmt.Errorf("-transform %q: want gray or ladder", c.transform)
	}
	switch {
	case c.n < 1 && c.in == "":
		return fmt.Errorf("-n %d: want at least 1", c.n)
	case c.workers < 1:
		return fmt.Errorf("-workers %d: want at least 1", c.workers)
	case c.window < 1:
		return fmt.Errorf("-window %d: want at least 1", c.window)
	case c.concurrency < 1:
		return fmt.Errorf("-concurrency %d: want at least 1", c.concurrency)
	case c.size < 32 || c.size > 4096:
		return fmt.Errorf("-size %d: want 32 to 4096", c.size)
	case c.thumb < 8 || c.thumb > 1024:
		return fmt.Errorf("-thumb %d: want 8 to 1024", c.thumb)
	case c.work < 0:
		return fmt.Errorf("-work %v: want 0 or more", c.work)
	case c.runID != "" && imageID(c.runID) != c.runID:
		return fmt.Errorf("-run %q: use letters, digits, - and _ only", c.runID)
	}
	if c.metrics != "" {
		_, port, err := net.SplitHostPort(c.metrics)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535-c.workers-8 {
			return fmt.Errorf("-metrics %q: want host:port, the port 0 (any) or low enough for the children's ports after it", c.metrics)
		}
	}
	if c.pki != "" && c.role == "" {
		return fmt.Errorf("-pki is for one role (-role); the demo makes its own with -secure")
	}
	if c.name == "" && c.role != "" {
		c.name = c.role + "-" + discovery.DefaultName()
	}
	return nil
}

// logger returns the logger of a role process: text on stderr, tagged with
// the process's name.
func (c *config) logger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if c.child && !c.verbose {
		level = slog.LevelWarn
	}
	if c.logLevel != "" {
		_ = level.UnmarshalText([]byte(strings.ToUpper(c.logLevel)))
	}
	h := slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.String(slog.TimeKey, a.Value.Time().Format("15:04:05.000"))
			}
			return a
		},
	})
	return slog.New(h).With("node", c.name)
}

// newNode starts this process's discovery node: on loopback (fast local
// timings) when -gossip is a loopback address, else a LAN node. When the
// default gossip port is taken (several roles on one host), it falls back to
// a free port.
func (c *config) newNode(log *slog.Logger) (*discovery.Node, error) {
	// memberlist's own logs (including harmless errors while leaving) only
	// at debug level.
	var glog *slog.Logger
	if log.Enabled(context.Background(), slog.LevelDebug) {
		glog = log
	}
	cfg, err := nodeConfig(c.name, c.gossip, c.join, glog)
	if err != nil {
		return nil, err
	}
	if c.pki != "" {
		if err := secureConfig(&cfg, c.pki, c.name); err != nil {
			return nil, err
		}
	}
	n, err := discovery.New(cfg)
	if err != nil && !c.gossipSet && cfg.BindPort != 0 {
		log.Info("default gossip port busy, using a free one", "port", cfg.BindPort, "err", err)
		cfg.BindPort = 0
		n, err = discovery.New(cfg)
	}
	if err != nil {
		return nil, err
	}
	if c.join == "" {
		log.Info("mesh started: others join with -join " + n.Addr())
	} else {
		log.Info("joining the mesh", "seed", c.join, "gossip", n.Addr())
	}
	return n, nil
}

// newRunID returns a run id: the time plus a few random hex digits.
func newRunID() string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return time.Now().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}
