// Command bench measures spmesh against raw mangos v3 and NATS side by side,
// in one process, over TCP loopback, and prints a markdown table.
//
//	cd bench && go run . [-only regexp] [-duration d] [-runs n]
//
// Systems: spmesh (tcp://, which spmesh carries over its batching sptcp
// transport by default; the raw codec), raw mangos v3 with its stock tcp
// transport, raw mangos over spmesh's batching transport (sptcp://), and
// NATS (an embedded nats-server/v2, nats.go clients; JetStream with memory
// storage for the acked pipeline, file storage for the durable one). Each cell warms up until every receiver
// has heard from the sender, sends for -duration as fast as the system
// takes it, then waits until nothing more arrives: only what arrived is
// counted, the rest is reported as drops. Ratios compare with NATS and with
// stock raw mangos from the same run; with -runs > 1 each cell is the median
// run (by throughput, or by p50 for latency). The heap column is the heap in
// use after the scenario (all of its sockets, servers and queues alive,
// after a GC) over the heap before it; allocs/msg counts every allocation in
// the process during the measured part, divided by the messages sent.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

// system is one contender; a nil scenario function prints n/a.
type system struct {
	name     string
	pubsub   func(size, subs int) (*stream, error)
	pipeline func(size, workers int) (*stream, error)
	acked    func(size, workers int) (*stream, error)
	durable  func(size, workers int) (*stream, error) // acked, jobs on disk before accepted
	reqrep   func(size int) (*rpc, error)
	// nomatch opens a stream with a subscriber of its topic, and returns
	// the address a non-matching subscriber dials and (may be nil) a wait
	// until that subscriber's subscription is in effect.
	nomatch func(size int) (*stream, string, func() error, error)
	partial bool // its scenarios without a function are left out of the table
}

// scenario is one table section.
type scenario struct {
	name  string // for -only
	title string
	run   func(s *system, d time.Duration) *result
}

func systems() []*system {
	return []*system{
		spmeshSystem(),
		spmeshTLSSystem(),
		spmeshLosslessSystem(),
		spmeshMetricsSystem(),
		mangosSystem("mangos", "tcp"),
		mangosSystem("mangos+sptcp", "sptcp"),
		natsSystem(),
		natsDurableSystem("nats+fsync", jsFileFsync),
		natsDurableSystem("nats+memory", jsMemory),
		spmeshDurableSystem("spmesh+periodic", spmeshDurablePeriodic),
		spmeshDurableSystem("spmesh+memory", spmeshDurableMemory),
		tcpSystem(),
	}
}

// durableWindow is the durable row's concurrency: spmesh's window of jobs
// in flight, and the goroutines submitting at once to either system.
var durableWindow = ackWindow

// Reference systems for the ratio columns.
const (
	refNATS   = "nats"
	refMangos = "mangos"
)

func streamRun(pick func(*system) func(int, int) (*stream, error), size, n int) func(*system, time.Duration) *result {
	return func(s *system, d time.Duration) *result {
		f := pick(s)
		if f == nil {
			return &result{err: errNotBuilt}
		}
		mem := baseline()
		st, err := f(size, n)
		if err != nil {
			return &result{err: err}
		}
		return measureStream(st, size, d, mem)
	}
}

func scenarios() []scenario {
	var sc []scenario
	pubsub := func(s *system) func(int, int) (*stream, error) { return s.pubsub }
	for _, n := range []int{16, 256, 4096, 65536} {
		sc = append(sc, scenario{
			name: "pubsub-" + sizeName(n), title: "pub/sub 1→1, " + sizeText(n),
			run: streamRun(pubsub, n, 1),
		})
	}
	sc = append(sc,
		scenario{name: "fanout4-256B", title: "fan-out 1→4, 256 B (per subscriber)", run: streamRun(pubsub, 256, 4)},
		scenario{name: "reqrep-64B", title: "req/rep sequential, 64 B", run: func(s *system, d time.Duration) *result {
			if s.reqrep == nil {
				return &result{err: errNotBuilt}
			}
			mem := baseline()
			r, err := s.reqrep(64)
			if err != nil {
				return &result{err: err}
			}
			return measureRPC(r, 64, d, mem)
		}},
		scenario{name: "pipeline2-256B", title: "pipeline 1→2, 256 B", run: streamRun(func(s *system) func(int, int) (*stream, error) { return s.pipeline }, 256, 2)},
		scenario{name: "acked2-256B", title: "at-least-once pipeline 1→2, acked, 256 B", run: streamRun(func(s *system) func(int, int) (*stream, error) { return s.acked }, 256, 2)},
		scenario{name: "durable2-256B", title: fmt.Sprintf("durable acked pipeline 1→2, 256 B, %d submitters", durableWindow), run: streamRun(func(s *system) func(int, int) (*stream, error) { return s.durable }, 256, 2)},
		scenario{name: "nomatch-256B", title: "non-matching subscriber's CPU, 256 B on another topic", run: func(s *system, d time.Duration) *result {
			if s.nomatch == nil {
				return &result{err: errNotBuilt}
			}
			kind, _, _ := strings.Cut(s.name, "+") // the child subscribes as mangos over sptcp too
			return nomatchRun(kind, s.nomatch, 256, d)
		}},
	)
	return sc
}

func sizeName(n int) string { return strings.ReplaceAll(sizeText(n), " ", "") }

func sizeText(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

// config is what a bench run does.
type config struct {
	only     *regexp.Regexp
	duration time.Duration
	runs     int
	progress io.Writer // nil: quiet
	syscalls bool      // add a column of system calls per message
}

// table holds the median result per scenario and system.
type table struct {
	cfg       config
	scenarios []scenario
	systems   []*system
	cells     map[string]*result // "scenario/system"
	took      time.Duration
}

func (c config) selected(sc scenario, s *system) bool {
	return c.only == nil || c.only.MatchString(sc.name+"/"+s.name)
}

// run measures every selected cell c.runs times, interleaving the runs so
// that noise spreads over all systems, and keeps each cell's median.
func run(c config) *table {
	t := &table{cfg: c, scenarios: scenarios(), systems: systems(), cells: map[string]*result{}}
	start := time.Now()
	all := map[string][]*result{}
	for r := range c.runs {
		for _, sc := range t.scenarios {
			for _, s := range t.systems {
				if !c.selected(sc, s) {
					continue
				}
				k := sc.name + "/" + s.name
				res := sc.run(s, c.duration)
				all[k] = append(all[k], res)
				if c.progress != nil {
					fmt.Fprintf(c.progress, "run %d/%d %-32s %s\n", r+1, c.runs, k, brief(res))
				}
			}
		}
	}
	for k, rs := range all {
		slices.SortFunc(rs, func(a, b *result) int {
			switch {
			case a.key() < b.key():
				return -1
			case a.key() > b.key():
				return 1
			}
			return 0
		})
		t.cells[k] = rs[len(rs)/2]
	}
	t.took = time.Since(start)
	return t
}

func brief(r *result) string {
	switch {
	case r.err != nil:
		return r.err.Error()
	case r.latency:
		return fmt.Sprintf("p50 %v", r.pct(0.5))
	case r.cpu:
		return fmt.Sprintf("%.1f ns CPU/msg at %s msg/s", r.cpuPerMsg, count(r.rate()))
	}
	return fmt.Sprintf("%s msg/s, drops %d", count(r.rate()), r.drops())
}

func count(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func dur(d time.Duration) string {
	us := float64(d) / float64(time.Microsecond)
	if us >= 1000 {
		return fmt.Sprintf("%.2f ms", us/1000)
	}
	return fmt.Sprintf("%.1f µs", us)
}

func (t *table) ratio(sc scenario, r *result, ref string) string {
	o, ok := t.cells[sc.name+"/"+ref]
	if !ok || o.err != nil || r.err != nil {
		return "–"
	}
	if r.cpu {
		if o.cpuPerMsg == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f× CPU", r.cpuPerMsg/o.cpuPerMsg)
	}
	if r.latency {
		if o.pct(0.5) == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f× p50", float64(r.pct(0.5))/float64(o.pct(0.5)))
	}
	if o.rate() == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", r.rate()/o.rate())
}

func (t *table) write(w io.Writer) {
	fmt.Fprintf(w, "%s %s/%s, %d CPUs; %v per cell, median of %d run(s); whole table in %v.\n\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), t.cfg.duration, t.cfg.runs, t.took.Round(time.Second))
	head, rule, none := "| scenario | system | result | vs NATS | vs mangos | drops | heap Δ | allocs/msg |", "|---|---|---|---:|---:|---:|---:|---:|", ""
	if t.cfg.syscalls {
		head, rule, none = head+" reads/msg | writes/msg | CPU/msg |", rule+"---:|---:|---:|", " – | – | – |"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, rule)
	for _, sc := range t.scenarios {
		for _, s := range t.systems {
			r, ok := t.cells[sc.name+"/"+s.name]
			if !ok {
				continue
			}
			if r.err != nil && s.partial && r.err == errNotBuilt {
				continue
			}
			if r.err != nil {
				fmt.Fprintf(w, "| %s | %s | %s | – | – | – | – | – |%s\n", sc.title, s.name, r.err, none)
				continue
			}
			var res, drops string
			if r.latency {
				res = fmt.Sprintf("p50 %s · p99 %s · p99.9 %s · %s rt/s",
					dur(r.pct(0.5)), dur(r.pct(0.99)), dur(r.pct(0.999)), count(r.rate()))
				drops = "–"
			} else {
				res = fmt.Sprintf("%s msg/s · %.0f MB/s", count(r.rate()), r.rate()*float64(r.size)/1e6)
				if r.cpu {
					res = fmt.Sprintf("%.1f ns CPU/msg (non-matching process) · ", r.cpuPerMsg) + res
				}
				d := r.drops()
				want := r.sent
				if r.fanout {
					want *= uint64(r.receivers)
				}
				drops = fmt.Sprintf("%d (%.1f%%)", d, 100*float64(d)/float64(max(want, 1)))
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %+.1f MiB | %.1f |",
				sc.title, s.name, res, t.ratio(sc, r, refNATS), t.ratio(sc, r, refMangos), drops,
				float64(r.heap)/(1<<20), r.allocs)
			switch {
			case !t.cfg.syscalls:
				fmt.Fprintln(w)
			case r.sysW < 0:
				fmt.Fprintf(w, " – | – | %s |\n", dur(r.cpuMsg))
			default:
				fmt.Fprintf(w, " %.2f | %.2f | %s |\n", r.sysR, r.sysW, dur(r.cpuMsg))
			}
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "vs NATS / vs mangos: throughput ratio (higher is better); for req/rep, p50 latency ratio (lower is better); for the non-matching subscriber, its process's CPU per message sent (lower is better).")
	fmt.Fprintln(w, "mangos+sptcp is raw mangos over spmesh's batching SP/TCP transport (same wire format as stock tcp).")
	t.writeTLSCost(w)
	t.writeCost(w, "spmesh+metrics", "spmesh", "spmesh+metrics is the same spmesh system with every socket on a metrics.Collector registered on a Prometheus registry, gathered every 100 ms during the run; its cost, as spmesh+metrics / spmesh in this run:")
	t.writeCost(w, "spmesh+lossless", "spmesh", "spmesh+lossless is spmesh's pub/sub with pubsub.WithBackpressure on both sides; as spmesh+lossless / spmesh in this run:")
	t.writeCost(w, "spmesh", "spmesh+memory", "durable row: spmesh is the Producer with pipeline.WithOutbox (a bbolt file, fsynced before each job is accepted, group commit),\n"+
		"spmesh+periodic the same with pipeline.WithOutboxSync(2m) (accepted once written to the OS, fsynced every 2 min);\n"+
		"nats is JetStream with file storage at the server's default sync (written to the OS at once, fsynced every 2 min), nats+fsync with sync_always (fsynced on every write);\n"+
		"spmesh+memory and nats+memory are the same without disk. The cost of durability, spmesh / spmesh+memory in this run:")
	t.writeCost(w, "nats", "nats+memory", "nats (file) / nats+memory in this run:")
	t.writeCost(w, "spmesh", "nats+fsync", "same promise, fsync before accepted: spmesh (outbox, fsync) / nats+fsync in this run:")
	t.writeCost(w, "spmesh+periodic", "nats", "same promise, fsync every 2 min: spmesh+periodic / nats (file, default sync) in this run:")
	t.writeCost(w, "spmesh", "tcp", "tcp is a plain net.Conn ping-pong (length-prefixed echo, sequential), the floor; spmesh / tcp in this run:")
	t.writeCost(w, "nats", "tcp", "nats / tcp in this run:")
}

// writeCost prints, for every scenario both have, variant's ratio to base
// in this run.
func (t *table) writeCost(w io.Writer, variant, base, head string) {
	var lines []string
	for _, sc := range t.scenarios {
		r, ok := t.cells[sc.name+"/"+variant]
		if _, has := t.cells[sc.name+"/"+base]; !ok || !has || r.err != nil {
			continue
		}
		if ratio := t.ratio(sc, r, base); ratio != "–" {
			lines = append(lines, fmt.Sprintf("%s: %s", sc.title, ratio))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintln(w, head)
		for _, l := range lines {
			fmt.Fprintln(w, "  - "+l)
		}
	}
}

// writeTLSCost prints the cost of TLS: spmesh+tls over spmesh, same run,
// for every scenario both have.
func (t *table) writeTLSCost(w io.Writer) {
	var lines []string
	for _, sc := range t.scenarios {
		r, ok := t.cells[sc.name+"/spmesh+tls"]
		if !ok || r.err != nil {
			continue
		}
		if ratio := t.ratio(sc, r, "spmesh"); ratio != "–" {
			lines = append(lines, fmt.Sprintf("%s: %s", sc.title, ratio))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintln(w, "spmesh+tls is spmesh over tls+tcp:// with mutual TLS 1.3 (ECDSA P-256); its cost, as spmesh+tls / spmesh in this run:")
		for _, l := range lines {
			fmt.Fprintln(w, "  - "+l)
		}
	}
}

func main() {
	only := flag.String("only", "", "run only the cells whose \"scenario/system\" matches this regexp (e.g. 'pubsub-256B' or '/nats$')")
	duration := flag.Duration("duration", time.Second, "measured time per cell")
	runs := flag.Int("runs", 1, "runs per cell; the table shows the median")
	quiet := flag.Bool("q", false, "no progress lines on stderr")
	syscalls := flag.Bool("syscalls", false, "add the process's read and write system calls (Linux /proc/self/io syscr, syscw) and its CPU time (user + system), per message sent")
	flag.IntVar(&durableWindow, "durable-window", durableWindow, "durable row: jobs in flight (spmesh's window) and concurrent submitters (both systems)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memprofile := flag.String("memprofile", "", "write an allocation profile of the whole run to this file")
	flag.Parse()
	c := config{duration: *duration, runs: max(*runs, 1), syscalls: *syscalls}
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: -only:", err)
			os.Exit(2)
		}
		c.only = re
	}
	if !*quiet {
		c.progress = os.Stderr
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: -cpuprofile:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if *memprofile != "" {
		runtime.MemProfileRate = 4096
		defer func() {
			f, err := os.Create(*memprofile)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(f, 0)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench: -memprofile:", err)
			}
		}()
	}
	run(c).write(os.Stdout)
}
