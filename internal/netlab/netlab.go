// Package netlab runs multi-host tests on one machine: each host is a
// network namespace with one interface on a bridge that lives in a "switch"
// namespace, and faults (partitions, packet loss) are nftables rules of the
// bridge family in the switch. Processes are started inside hosts by
// re-running the test binary itself; the child serves commands from the
// controller (the test) over stdin/stdout.
//
// Traps, first:
//   - It needs root, `ip` (iproute2) and `nft` (nftables); [New] skips the
//     test with the reason when one is missing.
//   - Hosts have no default route and the root namespace no route to them:
//     never dial a host's address from the test process itself; talk to
//     children through [Proc.Call].
//   - Every lab has a name prefix holding the test process's PID; at start,
//     namespaces left by dead (or zombie) owners are deleted, with their
//     processes. Children get SIGKILL when the test process dies.
//   - A child's stdout is the command channel: children must log to stderr.
//     Their stderr is shown in the test log when the test fails.
//
// The test binary's TestMain calls [MaybeChild] first, which serves the
// controller and exits when the process is a child. Then, in a test:
//
//	lab := netlab.New(t, 3)         // 3 hosts: 10.99.0.1 .. 10.99.0.3
//	p := lab.Hosts[0].Start(t)      // a child inside host 0
//	out, err := p.Call("start", "h0")
//	lab.Partition(lab.Hosts[:1], lab.Hosts[1:])
//	lab.Heal()
package netlab

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
)

// Subnet is the hosts' /24; host i has address Subnet.(i+1).
const Subnet = "10.99.0"

// childEnv marks a child process.
const childEnv = "SPMESH_NETLAB_CHILD"

// Lab is a set of hosts on one bridge.
type Lab struct {
	t      testing.TB
	Prefix string  // namespace name prefix, unique per process and lab
	Switch string  // the switch namespace
	Hosts  []*Host // in order: host i has IP Subnet.(i+1)

	mu    sync.Mutex
	procs []*Proc
}

// Host is one network namespace with interface eth0 on the bridge.
type Host struct {
	Index int
	NS    string // namespace name
	IP    string
	Port  string // its bridge port in the switch namespace
	lab   *Lab
}

var labSeq atomic.Int64

// Skip reports why multi-host tests cannot run here, or "" when they can.
func Skip() string {
	if os.Geteuid() != 0 {
		return "netlab: needs root (network namespaces); run as root, as CI does"
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("netlab: %q not found (apt-get install -y iproute2 nftables)", tool)
		}
	}
	return ""
}

// New builds a lab of n hosts, torn down at the end of the test (children
// killed, namespaces deleted). It skips the test when [Skip] says so.
func New(t testing.TB, n int) *Lab {
	t.Helper()
	if why := Skip(); why != "" {
		t.Skip(why)
	}
	cleanLeftovers(t)
	l := &Lab{t: t, Prefix: fmt.Sprintf("spl%d-%d-", os.Getpid(), labSeq.Add(1))}
	l.Switch = l.Prefix + "sw"
	t.Cleanup(l.close)
	sw := l.Switch
	cmds := [][]string{
		{"netns", "add", sw},
		{"-n", sw, "link", "set", "lo", "up"},
		{"-n", sw, "link", "add", "br0", "type", "bridge"},
		{"-n", sw, "link", "set", "br0", "up"},
	}
	for i := range n {
		h := &Host{Index: i, NS: fmt.Sprintf("%sh%d", l.Prefix, i), IP: fmt.Sprintf("%s.%d", Subnet, i+1), Port: fmt.Sprintf("p%d", i), lab: l}
		l.Hosts = append(l.Hosts, h)
		cmds = append(cmds,
			[]string{"netns", "add", h.NS},
			[]string{"link", "add", h.Port, "netns", sw, "type", "veth", "peer", "name", "eth0", "netns", h.NS},
			[]string{"-n", sw, "link", "set", h.Port, "master", "br0"},
			[]string{"-n", sw, "link", "set", h.Port, "up"},
			[]string{"-n", h.NS, "link", "set", "lo", "up"},
			[]string{"-n", h.NS, "addr", "add", h.IP + "/24", "dev", "eth0"},
			[]string{"-n", h.NS, "link", "set", "eth0", "up"},
		)
	}
	for _, c := range cmds {
		if err := run("ip", c...); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.nft("add table bridge netlab\nadd chain bridge netlab forward { type filter hook forward priority 0; policy accept; }\n"); err != nil {
		t.Fatal(err)
	}
	return l
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netlab: %s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// nft runs an nft script in the switch namespace.
func (l *Lab) nft(script string) error {
	cmd := exec.Command("ip", "netns", "exec", l.Switch, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("netlab: nft %q: %v: %s", script, err, bytes.TrimSpace(out))
	}
	return nil
}

// Partition drops every frame between a host of a and a host of b, both
// ways, until Heal.
func (l *Lab) Partition(a, b []*Host) {
	l.t.Helper()
	var s strings.Builder
	for _, x := range a {
		for _, y := range b {
			fmt.Fprintf(&s, "add rule bridge netlab forward iifname %q oifname %q drop\n", x.Port, y.Port)
			fmt.Fprintf(&s, "add rule bridge netlab forward iifname %q oifname %q drop\n", y.Port, x.Port)
		}
	}
	if err := l.nft(s.String()); err != nil {
		l.t.Fatal(err)
	}
}

// Loss drops about percent % of the frames h sends (one direction: what
// enters the bridge from h), until Heal.
func (l *Lab) Loss(h *Host, percent int) {
	l.t.Helper()
	if err := l.nft(fmt.Sprintf("add rule bridge netlab forward iifname %q numgen random mod 100 < %d drop\n", h.Port, percent)); err != nil {
		l.t.Fatal(err)
	}
}

// Heal removes every fault rule.
func (l *Lab) Heal() {
	l.t.Helper()
	if err := l.nft("flush chain bridge netlab forward\n"); err != nil {
		l.t.Fatal(err)
	}
}

func (l *Lab) close() {
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	l.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	for _, h := range l.Hosts {
		deleteNS(h.NS)
	}
	deleteNS(l.Switch)
}

// deleteNS kills what still runs inside ns, then deletes it.
func deleteNS(ns string) {
	if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	exec.Command("ip", "netns", "del", ns).Run()
}

// cleanLeftovers deletes namespaces of labs whose owner process is dead.
func cleanLeftovers(t testing.TB) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "spl") {
			continue
		}
		name := f[0]
		pidStr, _, ok := strings.Cut(name[3:], "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || testutil.Alive(pid) {
			continue
		}
		t.Logf("netlab: deleting namespace %s left by dead process %d", name, pid)
		deleteNS(name)
	}
}

// Proc is a child process running inside a host.
type Proc struct {
	Host *Host
	c    *testutil.Child
	errb testutil.Buffer

	mu sync.Mutex // one call at a time
}

// Start runs a child (the test binary, in child mode) inside h. The child
// is killed at the end of the test; its stderr is logged if the test fails.
func (h *Host) Start(t testing.TB) *Proc {
	t.Helper()
	cmd := testutil.Command([]string{childEnv + "=" + h.NS}, "ip", "netns", "exec", h.NS, testutil.Self(), "-test.run=^$")
	p := &Proc{Host: h}
	cmd.Stderr = &p.errb
	p.c = testutil.StartLines(t, cmd, nil)
	l := h.lab
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("stderr of the child in %s:\n%s", h.NS, p.errb.String())
		}
	})
	return p
}

// Call sends a command to the child and returns its answer; it fails after
// timeout (10 s).
func (p *Proc) Call(cmd string, args ...string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line, _ := json.Marshal(append([]string{cmd}, args...))
	if _, err := p.c.Stdin().Write(append(line, '\n')); err != nil {
		return "", fmt.Errorf("netlab: %s: write %s: %v", p.Host.NS, cmd, err)
	}
	s, err := p.c.Line(10 * time.Second)
	switch {
	case err == io.EOF:
		return "", fmt.Errorf("netlab: %s: child exited during %s", p.Host.NS, cmd)
	case err != nil:
		return "", fmt.Errorf("netlab: %s: no reply to %s within 10s", p.Host.NS, cmd)
	}
	var r reply
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return "", fmt.Errorf("netlab: %s: bad reply %q", p.Host.NS, s)
	}
	if r.Err != "" {
		return r.Out, errors.New(r.Err)
	}
	return r.Out, nil
}

// Kill sends SIGKILL to the child and waits for it to exit; it is
// idempotent.
func (p *Proc) Kill() { p.c.Kill() }

// Stderr returns what the child wrote to stderr so far.
func (p *Proc) Stderr() string { return p.errb.String() }

type reply struct {
	Out string `json:"out,omitempty"`
	Err string `json:"err,omitempty"`
}

// Commands are what a child serves: a command name and its handler, called
// with the command's arguments, one command at a time.
type Commands map[string]func(args []string) (string, error)

// MaybeChild returns at once in the test process. In a child started by
// [Host.Start] it serves cmds on stdin/stdout until stdin closes, then
// exits the process. Call it first in TestMain.
func MaybeChild(cmds Commands) {
	host := os.Getenv(childEnv)
	if host == "" {
		return
	}
	os.Exit(serve(host, cmds, os.Stdin, os.Stdout))
}

func serve(host string, cmds Commands, in io.Reader, out io.Writer) int {
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 1<<20)
	w := bufio.NewWriter(out)
	for sc.Scan() {
		var args []string
		var r reply
		if err := json.Unmarshal(sc.Bytes(), &args); err != nil || len(args) == 0 {
			r.Err = fmt.Sprintf("netlab child %s: bad command %q", host, sc.Text())
		} else if f, ok := cmds[args[0]]; !ok {
			r.Err = fmt.Sprintf("netlab child %s: unknown command %q", host, args[0])
		} else if o, err := f(args[1:]); err != nil {
			r.Out, r.Err = o, err.Error()
		} else {
			r.Out = o
		}
		b, _ := json.Marshal(r)
		w.Write(append(b, '\n'))
		if err := w.Flush(); err != nil {
			return 1
		}
	}
	return 0
}
