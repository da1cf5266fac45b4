package hostile

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"
)

// Mem is a snapshot of the process's memory, taken after a collection.
type Mem struct {
	HeapAlloc  uint64 // live heap bytes
	TotalAlloc uint64 // bytes allocated since the process started
	Goroutines int
}

// ReadMem collects garbage and reads the memory statistics.
func ReadMem() Mem {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Mem{HeapAlloc: ms.HeapAlloc, TotalAlloc: ms.TotalAlloc, Goroutines: runtime.NumGoroutine()}
}

// Growth is the difference between two snapshots.
type Growth struct {
	Held      int64  // live heap growth
	Allocated uint64 // bytes allocated in between
	Routines  int    // goroutine growth
}

// Since returns what changed from m to now.
func (m Mem) Since() Growth {
	n := ReadMem()
	return Growth{Held: int64(n.HeapAlloc) - int64(m.HeapAlloc), Allocated: n.TotalAlloc - m.TotalAlloc,
		Routines: n.Goroutines - m.Goroutines}
}

func (g Growth) String() string {
	return fmt.Sprintf("held %+.2f MiB, allocated %.2f MiB, goroutines %+d",
		float64(g.Held)/(1<<20), float64(g.Allocated)/(1<<20), g.Routines)
}

// Bound is the stated limit of a heap figure: Per times the bytes the
// attacker sent, plus Slack for what the process does meanwhile (legit
// traffic, buffers, the runtime).
type Bound struct {
	Per   float64
	Slack uint64
}

// Limit is the bound for sent bytes.
func (b Bound) Limit(sent int64) uint64 { return uint64(b.Per*float64(sent)) + b.Slack }

// Check returns an error when got exceeds the bound for sent bytes.
func (b Bound) Check(what string, got int64, sent int64) error {
	if got > 0 && uint64(got) > b.Limit(sent) {
		return fmt.Errorf("%s: got %.2f MiB for %d bytes received, want at most %.0fx + %.1f MiB = %.2f MiB",
			what, float64(got)/(1<<20), sent, b.Per, float64(b.Slack)/(1<<20), float64(b.Limit(sent))/(1<<20))
	}
	return nil
}

// Latency records the durations of a legit peer's calls.
type Latency struct {
	mu   sync.Mutex
	d    []time.Duration
	errs int
	last error
}

// Observe records one call.
func (l *Latency) Observe(d time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.errs++
		l.last = err
		return
	}
	l.d = append(l.d, d)
}

// Quantile returns the q-quantile of the successful calls (0 if none).
func (l *Latency) Quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// P99 is Quantile(0.99).
func (l *Latency) P99() time.Duration { return l.Quantile(0.99) }

// Counts returns how many calls succeeded and failed, and the last error.
func (l *Latency) Counts() (ok, failed int, last error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d), l.errs, l.last
}

// Run makes n calls of f one after the other, each bounded by per, and
// records them.
func (l *Latency) Run(n int, per time.Duration, f func(ctx context.Context) error) {
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), per)
		start := time.Now()
		err := f(ctx)
		l.Observe(time.Since(start), err)
		cancel()
	}
}

// RunFor makes calls of f one after the other, each bounded by per, until
// at least n were made and d has passed, and records them.
func (l *Latency) RunFor(n int, d, per time.Duration, f func(ctx context.Context) error) {
	end := time.Now().Add(d)
	for i := 0; i < n || time.Now().Before(end); i++ {
		ctx, cancel := context.WithTimeout(context.Background(), per)
		start := time.Now()
		err := f(ctx)
		l.Observe(time.Since(start), err)
		cancel()
	}
}

// Ratio is p99 during over p99 without, formatted for a log.
func Ratio(during, without *Latency) string {
	a, b := during.P99(), without.P99()
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx (p99 %v during, %v without)", float64(a)/float64(b), a, b)
}
