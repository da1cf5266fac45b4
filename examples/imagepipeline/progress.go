package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// progressLine renders one line of progress: a bar, the count, the rate,
// and per worker the images it made (and, from the latest survey, how many
// it is working on).
func progressLine(done, total int, rate float64, per map[string]int, load map[string]Load, width int) string {
	if total < 1 {
		total = 1
	}
	fill := min(width, done*width/total)
	var b strings.Builder
	fmt.Fprintf(&b, "[%s%s] %3d/%d %5.1f img/s ", strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, total, rate)
	names := make([]string, 0, len(per)+len(load))
	for w := range per {
		names = append(names, w)
	}
	for w := range load {
		if _, ok := per[w]; !ok {
			names = append(names, w)
		}
	}
	slices.Sort(names)
	for _, w := range names {
		fmt.Fprintf(&b, " %s:%d", w, per[w])
		if l, ok := load[w]; ok && l.InFlight > 0 {
			fmt.Fprintf(&b, "(%d busy)", l.InFlight)
		}
	}
	return b.String()
}

// console writes log lines and a progress line that stays at the bottom:
// on a terminal the progress line is redrawn in place; elsewhere (a file, a
// test) it is printed at most once a second.
type console struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	bar      string // the progress line on screen ("" when none)
	lastPlan time.Time
}

func newConsole(w io.Writer) *console {
	c := &console{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			c.tty = true
		}
	}
	return c
}

// Println prints a line above the progress line.
func (c *console) Println(a ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tty && c.bar != "" {
		fmt.Fprint(c.w, "\r\033[K")
	}
	fmt.Fprintln(c.w, a...)
	if c.tty && c.bar != "" {
		fmt.Fprint(c.w, c.bar)
	}
}

// Progress shows line as the progress line.
func (c *console) Progress(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.tty {
		if time.Since(c.lastPlan) >= time.Second {
			c.lastPlan = time.Now()
			fmt.Fprintln(c.w, line)
		}
		return
	}
	c.bar = line
	fmt.Fprint(c.w, "\r\033[K"+line)
}

// Done ends the progress line, leaving its last state on screen.
func (c *console) Done(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tty {
		fmt.Fprint(c.w, "\r\033[K"+line+"\n")
	} else {
		fmt.Fprintln(c.w, line)
	}
	c.bar = ""
}

// lineWriter is an io.Writer that hands each line written to it to println
// (a logger's output routed through the console).
type lineWriter func(a ...any)

func (f lineWriter) Write(p []byte) (int, error) {
	for line := range strings.Lines(string(p)) {
		f("  " + strings.TrimRight(line, "\n"))
	}
	return len(p), nil
}
