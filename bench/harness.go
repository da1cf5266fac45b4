package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// errNotBuilt marks a system that cannot run a scenario yet.
var errNotBuilt = errors.New("n/a (not built yet)")

// stream is one sender feeding one or more receivers.
type stream struct {
	send func([]byte) error // one message; may block (backpressure)
	// senders is how many goroutines call send at once in the measured
	// part (0 or 1: one; more: send must be safe for concurrent use).
	senders int
	counts  []*atomic.Uint64 // messages arrived, per receiver
	fanout  bool             // every receiver gets every message (pub/sub)
	close   func()

	// started and ended (may be nil) run when the measured interval starts
	// and once everything sent in it has arrived.
	started, ended func()
}

// rpc is one caller making sequential round trips.
type rpc struct {
	call  func([]byte) error
	close func()
}

func counters(n int) []*atomic.Uint64 {
	cs := make([]*atomic.Uint64, n)
	for i := range cs {
		cs[i] = new(atomic.Uint64)
	}
	return cs
}

func total(cs []*atomic.Uint64) (n uint64) {
	for _, c := range cs {
		n += c.Load()
	}
	return n
}

// result is one measurement of one system in one scenario.
type result struct {
	err error

	// Throughput scenarios.
	sent, recv uint64
	receivers  int
	fanout     bool
	elapsed    time.Duration
	size       int

	// Latency scenarios.
	lat []time.Duration // sorted

	heap   int64   // heap in use after the scenario, over the baseline before it
	allocs float64 // process-wide mallocs per message sent
	// Process-wide read and write system calls (read/readv, write/writev:
	// Linux's syscr and syscw) per message sent; -1 where unknown.
	sysR, sysW float64
	cpuMsg     time.Duration // process CPU time (user + system) per message sent
	latency    bool

	// CPU scenarios: what is compared is cpuPerMsg (ns), lower is better.
	cpu       bool
	cpuPerMsg float64
}

// rate is messages per second: per receiver for fan-out, else in total.
func (r *result) rate() float64 {
	if r.latency {
		return float64(len(r.lat)) / r.elapsed.Seconds()
	}
	if r.elapsed <= 0 {
		return 0
	}
	n := float64(r.recv)
	if r.fanout {
		n /= float64(r.receivers)
	}
	return n / r.elapsed.Seconds()
}

func (r *result) drops() uint64 {
	want := r.sent
	if r.fanout {
		want *= uint64(r.receivers)
	}
	if r.recv >= want {
		return 0
	}
	return want - r.recv
}

func (r *result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := min(len(r.lat)-1, int(p*float64(len(r.lat))))
	return r.lat[i]
}

// key is what the median is taken over: higher is better.
func (r *result) key() float64 {
	if r.err != nil {
		return -1
	}
	if r.latency {
		return -float64(r.pct(0.5))
	}
	if r.cpu {
		return -r.cpuPerMsg
	}
	return r.rate()
}

type memBase struct{ heap uint64 }

// gc collects twice, so that sync.Pool caches (kept for one cycle) are
// emptied and only what the scenario's sockets hold remains.
func gc() {
	runtime.GC()
	runtime.GC()
}

func baseline() memBase {
	gc()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memBase{heap: ms.HeapInuse}
}

func (b memBase) delta() int64 {
	gc()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse) - int64(b.heap)
}

func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// ioCount is the process's read and write system calls so far (Linux's
// /proc/self/io syscr and syscw, which count read/readv and write/writev
// on every descriptor, sockets included); ok is false elsewhere.
type ioCount struct {
	r, w uint64
	ok   bool
	cpu  time.Duration
}

func sysIO() (c ioCount) {
	c.cpu = cpuTime()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return c
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ": ")
		n, err := strconv.ParseUint(v, 10, 64)
		switch {
		case err != nil:
		case k == "syscr":
			c.r = n
		case k == "syscw":
			c.w, c.ok = n, true
		}
	}
	return c
}

// per returns the reads and writes since c per message (-1 if unknown),
// and the CPU time per message.
func (c ioCount) per(msgs uint64) (r, w float64, cpu time.Duration) {
	now := sysIO()
	if msgs == 0 {
		return -1, -1, 0
	}
	cpu = (now.cpu - c.cpu) / time.Duration(msgs)
	if !c.ok || !now.ok {
		return -1, -1, cpu
	}
	return float64(now.r-c.r) / float64(msgs), float64(now.w-c.w) / float64(msgs), cpu
}

const (
	warmupLimit = 10 * time.Second
	quiet       = 200 * time.Millisecond // no arrival for this long: drained
	drainLimit  = 5 * time.Second
)

// measureStream sends for d, then waits for the receivers to drain, and
// counts only what arrived.
func measureStream(st *stream, size int, d time.Duration, mem memBase) *result {
	defer st.close()
	payload := make([]byte, size)
	// Warm up: every receiver has heard from the sender.
	deadline := time.Now().Add(warmupLimit)
	for {
		ready := true
		for _, c := range st.counts {
			if c.Load() == 0 {
				ready = false
			}
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			return &result{err: fmt.Errorf("receivers not connected within %v", warmupLimit)}
		}
		if err := st.send(payload); err != nil {
			return &result{err: fmt.Errorf("warm-up send: %w", err)}
		}
		time.Sleep(200 * time.Microsecond)
	}
	waitQuiet(st.counts, quiet, drainLimit)

	base := total(st.counts)
	if st.started != nil {
		st.started()
	}
	m0, io0 := mallocs(), sysIO()
	start := time.Now()
	sent, err := sendFor(st, payload, start, d)
	if err != nil {
		return &result{err: fmt.Errorf("send: %w", err)}
	}
	last := waitQuiet(st.counts, quiet, drainLimit)
	if st.ended != nil {
		st.ended()
		st.ended = nil
	}
	r := &result{
		sent: sent, recv: total(st.counts) - base, receivers: len(st.counts), fanout: st.fanout,
		elapsed: last.Sub(start), size: size,
	}
	r.allocs = float64(mallocs()-m0) / float64(sent)
	r.sysR, r.sysW, r.cpuMsg = io0.per(sent)
	r.heap = mem.delta()
	return r
}

// sendFor sends from st.senders goroutines until d has passed since
// start, and returns how many messages were sent.
func sendFor(st *stream, payload []byte, start time.Time, d time.Duration) (uint64, error) {
	one := func() (uint64, error) {
		var sent uint64
		for {
			if err := st.send(payload); err != nil {
				return sent, err
			}
			sent++
			if sent%64 == 0 && time.Since(start) >= d {
				return sent, nil
			}
		}
	}
	if st.senders <= 1 {
		return one()
	}
	var total atomic.Uint64
	errs := make(chan error, st.senders)
	for range st.senders {
		go func() {
			n, err := one()
			total.Add(n)
			errs <- err
		}()
	}
	var first error
	for range st.senders {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return total.Load(), first
}

// waitQuiet polls until the counts have not moved for q (or limit passes)
// and returns when they last moved.
func waitQuiet(cs []*atomic.Uint64, q, limit time.Duration) time.Time {
	end := time.Now().Add(limit)
	last, at := total(cs), time.Now()
	for {
		time.Sleep(time.Millisecond)
		now := time.Now()
		if n := total(cs); n != last {
			last, at = n, now
		}
		if now.Sub(at) >= q || now.After(end) {
			return at
		}
	}
}

// measureRPC makes sequential round trips for d.
func measureRPC(r *rpc, size int, d time.Duration, mem memBase) *result {
	defer r.close()
	payload := make([]byte, size)
	for range 200 {
		if err := r.call(payload); err != nil {
			return &result{err: fmt.Errorf("warm-up call: %w", err)}
		}
	}
	lat := make([]time.Duration, 0, 1<<16)
	m0, io0 := mallocs(), sysIO()
	start := time.Now()
	for time.Since(start) < d {
		t0 := time.Now()
		if err := r.call(payload); err != nil {
			return &result{err: fmt.Errorf("call: %w", err)}
		}
		lat = append(lat, time.Since(t0))
	}
	res := &result{latency: true, elapsed: time.Since(start), size: size}
	res.allocs = float64(mallocs()-m0) / float64(len(lat))
	res.sysR, res.sysW, res.cpuMsg = io0.per(uint64(len(lat)))
	slices.Sort(lat)
	res.lat = lat
	res.heap = mem.delta()
	return res
}
