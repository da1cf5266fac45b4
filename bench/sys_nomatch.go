package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/pubsub"
	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/sub"
)

// The non-matching subscriber scenario: 256 B messages flow from a
// publisher to a subscriber of their topic (in this process), while a
// second subscriber, in a child process, subscribes to a topic nobody
// publishes on. What is measured is the child's CPU time (user + system,
// from its own getrusage) over the measured interval, per message sent:
// what a process pays for traffic it does not want. spmesh filters at the
// publisher (its SUB announces its prefixes), NATS at the server, raw
// mangos at the subscriber (every frame crosses the connection and is
// dropped there; what spmesh did before publisher-side filtering).

// nomatchEnv names the child's mode: "<system> <address>".
const nomatchEnv = "SPMESH_BENCH_NOMATCH_CHILD"

// nomatchTopic is what the child subscribes to; nothing is published on it.
const nomatchTopic = "want.x"

func init() {
	if v := os.Getenv(nomatchEnv); v != "" {
		os.Exit(nomatchChild(v))
	}
}

// nomatchChild runs the child: subscribe, print "ready", then on "start"
// take the CPU time, and on end of input print the CPU time spent since.
func nomatchChild(spec string) int {
	kind, addr, _ := strings.Cut(spec, " ")
	var stop func()
	switch kind {
	case "spmesh":
		s, err := pubsub.NewSubscriber(pubsub.WithCodec(spmesh.Raw), pubsub.WithSubscribe(nomatchTopic), pubsub.WithDial(addr))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = s.WaitPeers(ctx, 1)
			cancel()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
		go func() {
			for range s.C() {
			}
		}()
		stop = func() { s.Close() }
	case "mangos":
		s, err := sub.NewSocket()
		if err == nil {
			_ = s.SetOption(mangos.OptionReadQLen, queueLen)
			err = s.SetOption(mangos.OptionSubscribe, []byte(nomatchTopic))
		}
		if err == nil {
			err = s.Dial(addr)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
		go func() {
			for {
				m, err := s.RecvMsg()
				if err != nil {
					return
				}
				m.Free()
			}
		}()
		stop = func() { s.Close() }
	case "nats":
		nc, err := nats.Connect(addr)
		if err == nil {
			_, err = nc.Subscribe(nomatchTopic, func(*nats.Msg) {})
		}
		if err == nil {
			err = nc.Flush()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
		stop = nc.Close
	default:
		fmt.Fprintln(os.Stderr, "child: unknown system", kind)
		return 2
	}
	defer stop()
	fmt.Println("ready")
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		return 1
	}
	t0 := cpuTime()
	io.Copy(io.Discard, in)
	fmt.Println(int64(cpuTime() - t0))
	return 0
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// child is a running non-matching subscriber process.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startChild(kind, addr string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), nomatchEnv+"="+kind+" "+addr)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewReader(out)}
	if line, err := c.out.ReadString('\n'); err != nil || line != "ready\n" {
		c.kill()
		return nil, fmt.Errorf("non-matching subscriber did not start: %q %v", line, err)
	}
	return c, nil
}

func (c *child) start() { io.WriteString(c.in, "start\n") }

// end returns the child's CPU time since start and waits for it to exit.
func (c *child) end() (time.Duration, error) {
	c.in.Close()
	line, err := c.out.ReadString('\n')
	werr := c.cmd.Wait()
	if err != nil {
		return 0, errors.Join(err, werr)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	return time.Duration(ns), err
}

func (c *child) kill() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// nomatchRun measures the child's CPU per message while a stream of size
// bytes flows; open returns the stream and the address the child dials,
// and ready (may be nil) waits until the child's subscription is in effect.
func nomatchRun(kind string, open func(size int) (*stream, string, func() error, error), size int, d time.Duration) *result {
	mem := baseline()
	st, addr, ready, err := open(size)
	if err != nil {
		return &result{err: err}
	}
	c, err := startChild(kind, addr)
	if err == nil && ready != nil {
		err = ready()
	}
	if err != nil {
		if c != nil {
			c.kill()
		}
		st.close()
		return &result{err: err}
	}
	st.started = c.start
	var cpu time.Duration
	var cerr error
	st.ended = func() { cpu, cerr = c.end() }
	r := measureStream(st, size, d, mem)
	if st.ended != nil { // measureStream failed before the end
		c.kill()
	}
	if r.err == nil && cerr != nil {
		r.err = fmt.Errorf("non-matching subscriber: %w", cerr)
	}
	r.cpu = true
	r.cpuPerMsg = float64(cpu) / float64(max(r.sent, 1))
	return r
}

func spmeshNomatch(size int) (*stream, string, func() error, error) {
	var cs closers
	pub, err := pubsub.NewPublisher(pubsub.WithCodec(spmesh.Raw))
	if err != nil {
		return nil, "", nil, err
	}
	cs.add(pub.Close)
	addr, err := pub.Listen(loopback)
	if err == nil {
		var s *pubsub.Subscriber
		s, err = pubsub.NewSubscriber(pubsub.WithCodec(spmesh.Raw), pubsub.WithSubscribe("bench"), pubsub.WithDial(addr))
		if err == nil {
			cs.add(s.Close)
			counts := counters(1)
			go func() {
				for range s.C() {
					counts[0].Add(1)
				}
			}()
			ctx := context.Background()
			ready := func() error {
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				return pub.WaitPeers(wctx, 2)
			}
			return &stream{
				send:   func(b []byte) error { return pub.Publish(ctx, "bench", b) },
				counts: counts, fanout: true, close: cs.close,
			}, addr, ready, nil
		}
	}
	cs.close()
	return nil, "", nil, err
}

func (m mangosSys) nomatch(size int) (*stream, string, func() error, error) {
	st, addr, err := m.pubsubAddr(size, 1)
	return st, addr, nil, err
}

func natsNomatch(size int) (*stream, string, func() error, error) {
	e, err := startNATS(false)
	if err != nil {
		return nil, "", nil, err
	}
	counts, err := e.receivers(1, "bench", "")
	var pc *nats.Conn
	if err == nil {
		pc, err = e.connect()
	}
	if err != nil {
		e.close()
		return nil, "", nil, err
	}
	return &stream{
		send:   func(b []byte) error { return pc.Publish("bench", b) },
		counts: counts, fanout: true, close: e.close,
	}, e.srv.ClientURL(), nil, nil
}
