package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/pubsub"
	"github.com/spmesh/spmesh/reqrep"
)

// Summary is the outcome of a demo run (printed, and written as JSON with
// -summary).
type Summary struct {
	Run        string
	Dir        string // the run's output directory
	Sheet      string // the contact sheet
	Total      int    // images in the run
	Announced  int    // announcements the supervisor saw (pub/sub: at most once)
	Processed  int    // distinct images stored by the sink
	Duplicates int    // results delivered more than once (at-least-once at work)
	Missing    []string
	Failed     map[string]string // images that could not be processed, with why
	PerWorker  map[string]int
	// ServiceTimes is each worker's mean job time (send to ack, as the
	// producer measured it: spmesh PeerStats.MeanReplyTime), by name.
	ServiceTimes map[string]time.Duration
	Killed       []string // processes killed by -chaos, -chaos-sink and -chaos-producer
	Started      []string // processes started late
	Answered     []string // workers that answered the producer's load survey
	Elapsed      time.Duration
	Restored     int // images a restarted sink found already stored
	// -chaos-producer: what the restarted producer found in the outbox.
	ProducerRecovered int // unacked jobs it recovered from the outbox (pipeline Stats().Recovered)
	ProducerResumed   int // images it skipped: accepted by the killed producer
	Interrupted       bool
	// Secure mode (-secure): every endpoint advertised during the run, and
	// what the supervisor's own sockets saw.
	Secure    bool
	Endpoints []string       // service/role@address, sorted
	Sockets   []spmesh.Stats // the supervisor's subscriber and requester
}

// child is one role process started by the supervisor.
type child struct {
	name     string
	role     string
	reported bool // its exit was reported (or caused) by the supervisor
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited
	err      error         // its exit status, once done is closed
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// supervisor runs the whole demo on this machine: it is the mesh's seed,
// starts every role as a child process of this same binary, shows progress
// and prints the summary.
type supervisor struct {
	c    config
	con  *console
	node *discovery.Node
	exe  string
	out  string
	run  string
	obox string // the producer's outbox (pipeline.WithOutbox)

	pki      *throwawayPKI // -secure
	eps      map[string]bool
	mu       sync.Mutex
	children []*child
	sinks    int            // sinks started
	stopping bool           // stopAll has begun: no more restarts
	logs     sync.WaitGroup // the goroutines copying children's output

	// -metrics: the children's ports follow the supervisor's, in start
	// order (all 0 when it is 0: each picks a free one).
	metricsHost string
	metricsPort int
	started     int // children started

	loadMu   sync.Mutex
	load     map[string]Load
	answered []string // every worker seen in a load survey
	seen     int      // announcements
}

func supervise(ctx context.Context, c config, stdout, stderr io.Writer) error {
	start := time.Now()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	total := c.n
	if c.in != "" {
		files, err := listImages(c.in)
		if err != nil {
			return err
		}
		if len(files) == 0 {
			return fmt.Errorf("no images in %s", c.in)
		}
		total = len(files)
	}
	out := c.out
	if out == "" {
		if out, err = os.MkdirTemp("", "imagepipeline-"); err != nil {
			return err
		}
	}
	s := &supervisor{c: c, con: newConsole(stdout), exe: exe, out: out, run: newRunID(), load: map[string]Load{}}
	// The producer keeps its unacked jobs in an outbox, in a directory of
	// the supervisor's own: a producer restarted on it (-chaos-producer)
	// sends them again and resumes after the images it had submitted.
	obDir, err := os.MkdirTemp("", "imagepipeline-producer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(obDir)
	s.obox = filepath.Join(obDir, "outbox.db")
	s.c.name, s.c.gossip, s.c.child = "supervisor", "127.0.0.1:0", true // child: quiet unless -v
	if c.secure {
		if s.pki, err = newThrowawayPKI(); err != nil {
			return err
		}
		defer os.RemoveAll(s.pki.dir)
		if err := s.pki.issue(s.c.name); err != nil {
			return err
		}
		s.c.pki, s.eps = s.pki.dir, map[string]bool{}
	}
	log := s.c.logger(lineWriter(s.con.Println))
	if s.node, err = s.c.newNode(log); err != nil {
		return err
	}
	defer leave(s.node, log)
	obs, err := observe(s.c, s.node, log)
	if err != nil {
		return fmt.Errorf("-metrics: %w", err)
	}
	defer obs.close()
	if c.metrics != "" {
		host, port, _ := net.SplitHostPort(c.metrics) // checked by config.check
		s.metricsHost = host
		s.metricsPort, _ = strconv.Atoi(port)
	}
	defer s.stopAll(nil)

	sub, err := pubsub.NewSubscriber(pubsub.WithDiscovery(s.node, svcEvents), pubsub.WithSubscribe(topicReady, topicLoad))
	if err != nil {
		return err
	}
	events := make(chan struct{})
	go func() {
		defer close(events)
		s.watchEvents(sub)
	}()
	defer func() {
		sub.Close() // ends watchEvents
		<-events
	}()
	sink, err := reqrep.NewRequester(reqrep.WithDiscovery(s.node, svcSink), reqrep.WithWaitForReplier(),
		reqrep.WithAttemptTimeout(time.Second), reqrep.WithMaxMessageSize(maxMessage))
	if err != nil {
		return err
	}
	defer sink.Close()
	obs.add(svcEvents, "subscriber", sub)
	obs.add(svcSink, "requester", sink)

	s.con.Println(fmt.Sprintf("imagepipeline: %d images, 1 producer, %d workers, 1 sink; mesh seed %s; output %s",
		total, c.workers, s.node.Addr(), out))
	if s.pki != nil {
		s.con.Println("secure: gossip key, mutual TLS with a throwaway CA (" + s.pki.dir + "), plaintext refused, certificates must name their node")
	}
	s.sinks = 1
	if _, err := s.start("sink", "sink"); err != nil {
		return err
	}
	for i := 1; i <= c.workers; i++ {
		if _, err := s.start("worker", fmt.Sprintf("worker-%d", i)); err != nil {
			return err
		}
	}
	// The producer starts once the workers are in the mesh, so that its
	// first jobs spread over all of them (see warmUp).
	waited := time.Now()
	if err := s.waitWorkers(ctx, c.workers, 20*time.Second); err != nil {
		return err
	}
	log.Info("workers in the mesh", "took", time.Since(waited))
	producer, err := s.start("producer", "producer")
	if err != nil {
		return err
	}

	sum := Summary{Run: s.run, Dir: out, Total: total}
	var status SinkStatus
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	chaosDone, sinkChaosDone, prodChaosDone := !c.chaos, !c.chaosSink, !c.chaosProd
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			sum.Interrupted = true
			signal.Reset(os.Interrupt, syscall.SIGTERM) // a second Ctrl-C kills at once
			s.con.Println("stopping: producer, workers, then sink (Ctrl-C again to kill)")
			break loop
		case <-producer.done:
			if producer.err != nil {
				runErr = fmt.Errorf("producer: %w", producer.err)
			}
			break loop
		case <-tick.C:
		}
		if st, err := s.status(ctx, sink); err == nil {
			status = st
		}
		s.con.Progress(s.progress(status, total, time.Since(start)))
		if !prodChaosDone && status.Stored >= total/3 {
			prodChaosDone = true
			p, err := s.killProducer(&sum, producer)
			if err != nil {
				runErr = err
				break loop
			}
			producer = p
		}
		if !chaosDone && status.Stored >= total/3 {
			chaosDone = true
			s.chaos(&sum)
		}
		if !sinkChaosDone && status.Stored >= 2*total/3 {
			sinkChaosDone = true
			s.killSink(&sum)
		}
		s.watchChildren(producer)
		s.noteEndpoints()
	}
	if ctx.Err() != nil && !sum.Interrupted {
		sum.Interrupted, runErr = true, nil
		signal.Reset(os.Interrupt, syscall.SIGTERM)
	}
	sum.Elapsed = time.Since(start)
	// The final status: after the workers have finished what they held,
	// before the sink goes.
	s.stopAll(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if st, err := s.status(ctx, sink); err == nil {
			status = st
		}
	})
	s.loadMu.Lock()
	clear(s.load) // the final line shows counts, not who was busy
	s.loadMu.Unlock()
	s.con.Done(s.progress(status, total, sum.Elapsed))

	sum.Processed, sum.Duplicates, sum.PerWorker = status.Stored, status.Duplicates, status.PerWorker
	sum.Sheet, sum.Dir, sum.Restored = status.Sheet, status.Dir, status.Restored
	if sum.Dir == "" {
		sum.Dir = out
	}
	s.loadMu.Lock()
	sum.Announced = s.seen
	sum.Answered = slices.Sorted(slices.Values(s.answered))
	s.loadMu.Unlock()
	sum.Missing, sum.Failed = status.Missing, status.Failed
	if p, err := loadProgress(s.obox); err == nil && p.Run == s.run {
		sum.ServiceTimes = p.ServiceTimes
		if c.chaosProd {
			sum.ProducerRecovered = p.Recovered
		}
	}
	if s.pki != nil {
		sum.Secure = true
		sum.Endpoints = slices.Sorted(maps.Keys(s.eps))
		sum.Sockets = []spmesh.Stats{sub.Stats().Stats, sink.Stats().Stats}
	}
	if !sum.Interrupted && runErr == nil && !status.Finished {
		runErr = errors.New("the sink did not confirm the run")
	}
	printSummary(stdout, sum)
	if c.summary != "" {
		data, _ := json.MarshalIndent(sum, "", "  ")
		if err := os.WriteFile(c.summary, data, 0o644); err != nil {
			return err
		}
	}
	switch {
	case runErr != nil:
		return runErr
	case sum.Interrupted:
		return errors.New("interrupted")
	case len(sum.Missing) > 0 || sum.Processed != sum.Total:
		return fmt.Errorf("%d images missing", sum.Total-sum.Processed)
	}
	return nil
}

// start starts one role as a child process of this binary, joined to the
// supervisor's node and nothing else.
func (s *supervisor) start(role, name string) (*child, error) {
	args := []string{"-child", "-role", role, "-name", name, "-join", s.node.Addr(), "-gossip", "127.0.0.1:0",
		"-concurrency", strconv.Itoa(s.c.concurrency), "-transform", s.c.transform,
		"-thumb", strconv.Itoa(s.c.thumb), "-work", s.c.work.String()}
	if s.pki != nil {
		if err := s.pki.issue(name); err != nil {
			return nil, err
		}
		args = append(args, "-pki", s.pki.dir)
	}
	if s.c.logLevel != "" {
		args = append(args, "-log", s.c.logLevel)
	}
	if s.c.verbose {
		args = append(args, "-v")
	}
	switch role {
	case "sink":
		args = append(args, "-out", s.out)
	case "producer":
		args = append(args, "-run", s.run, "-outbox", s.obox, "-n", strconv.Itoa(s.c.n), "-size", strconv.Itoa(s.c.size), "-window", strconv.Itoa(s.c.window))
		if s.c.in != "" {
			args = append(args, "-in", s.c.in)
		}
	}
	metricsAt := ""
	if s.c.metrics != "" {
		s.mu.Lock()
		s.started++
		port := 0
		if s.metricsPort > 0 {
			port = s.metricsPort + s.started
		}
		s.mu.Unlock()
		addr := net.JoinHostPort(s.metricsHost, strconv.Itoa(port))
		args = append(args, "-metrics", addr)
		if port > 0 {
			metricsAt = ", metrics http://" + addr + "/metrics"
		}
	}
	cmd := exec.Command(s.exe, args...)
	cmd.SysProcAttr = childAttr()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	w.Close()
	ch := &child{name: name, role: role, cmd: cmd, done: make(chan struct{})}
	s.logs.Add(1)
	go func() {
		defer s.logs.Done()
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			s.con.Println("  [" + name + "] " + sc.Text())
		}
	}()
	go func() {
		ch.err = cmd.Wait()
		close(ch.done)
	}()
	s.mu.Lock()
	s.children = append(s.children, ch)
	s.mu.Unlock()
	s.con.Println(fmt.Sprintf("started %-9s pid %d%s", name, cmd.Process.Pid, metricsAt))
	return ch, nil
}

// waitWorkers waits until n workers advertise themselves for the jobs, up
// to limit.
func (s *supervisor) waitWorkers(ctx context.Context, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for len(s.node.Endpoints(svcJobs, spmesh.RoleWorker)) < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d workers joined the mesh within %v", len(s.node.Endpoints(svcJobs, spmesh.RoleWorker)), n, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// chaos kills a worker with SIGKILL (its jobs in flight are redelivered to
// the others) and starts a new one, which joins late and takes jobs.
func (s *supervisor) chaos(sum *Summary) {
	s.mu.Lock()
	var victim *child
	for _, ch := range s.children {
		if strings.HasPrefix(ch.name, "worker-") && !ch.exited() {
			victim = ch
			if ch.name == "worker-2" {
				break
			}
		}
	}
	s.mu.Unlock()
	if victim == nil {
		return
	}
	s.loadMu.Lock()
	busy := s.load[victim.name].InFlight
	s.loadMu.Unlock()
	victim.reported = true
	_ = victim.cmd.Process.Kill()
	<-victim.done
	sum.Killed = append(sum.Killed, victim.name)
	s.con.Println(fmt.Sprintf("chaos: killed %s with SIGKILL (jobs in hand: %d); its jobs go to the other workers", victim.name, busy))
	name := fmt.Sprintf("worker-%d", s.c.workers+1)
	if _, err := s.start("worker", name); err != nil {
		s.con.Println("chaos: " + err.Error())
		return
	}
	sum.Started = append(sum.Started, name)
}

// killProducer kills the producer with SIGKILL and starts a new one on the
// same outbox and run: it sends again the jobs the killed one had not seen
// acked, and submits the images after the last one the killed one had
// submitted (see saveProgress).
func (s *supervisor) killProducer(sum *Summary, victim *child) (*child, error) {
	victim.reported = true
	_ = victim.cmd.Process.Kill()
	<-victim.done
	sum.Killed = append(sum.Killed, victim.name)
	p, err := loadProgress(s.obox)
	if err == nil && p.Run == s.run {
		sum.ProducerResumed = p.Submitted
	}
	s.con.Println(fmt.Sprintf("chaos: killed %s with SIGKILL after %d images submitted; a new one resumes from its outbox", victim.name, sum.ProducerResumed))
	name := "producer-2" // a new mesh member: the dead one's name stays taken until the mesh forgets it
	ch, err := s.start("producer", name)
	if err != nil {
		return nil, fmt.Errorf("restart producer: %w", err)
	}
	sum.Started = append(sum.Started, name)
	return ch, nil
}

// killSink kills the sink with SIGKILL; watchChildren then starts a new one,
// which reads back what the old one stored.
func (s *supervisor) killSink(sum *Summary) {
	s.mu.Lock()
	var victim *child
	for _, ch := range s.children {
		if ch.role == "sink" && !ch.exited() {
			victim = ch
		}
	}
	s.mu.Unlock()
	if victim == nil {
		return
	}
	_ = victim.cmd.Process.Kill()
	<-victim.done
	sum.Killed = append(sum.Killed, victim.name)
	s.con.Println(fmt.Sprintf("chaos: killed %s (SIGKILL): results wait in the workers until a new sink is up", victim.name))
}

// watchChildren reports children that exited on their own, and starts a new
// sink when the sink died: results wait in the workers' hands meanwhile
// (they are at-least-once jobs too), so none is lost.
func (s *supervisor) watchChildren(producer *child) {
	s.mu.Lock()
	stopping := s.stopping
	var dead []*child
	for _, ch := range s.children {
		if ch != producer && !ch.reported && ch.exited() {
			ch.reported = true
			dead = append(dead, ch)
		}
	}
	s.mu.Unlock()
	for _, ch := range dead {
		s.con.Println(fmt.Sprintf("%s exited: %v", ch.name, ch.err))
		if ch.role == "sink" && !stopping {
			s.sinks++
			name := fmt.Sprintf("sink-%d", s.sinks)
			if _, err := s.start("sink", name); err != nil {
				s.con.Println("restart sink: " + err.Error())
			}
		}
	}
}

// stopAll stops the children still running, in order: the producer, then
// the workers (they finish the jobs in hand and hand the results to the
// sink), then the sink. Each is asked to leave the mesh (SIGTERM) and killed
// if it takes more than 10 s. It is idempotent.
func (s *supervisor) stopAll(beforeSink func()) {
	s.mu.Lock()
	s.stopping = true
	children := slices.Clone(s.children)
	s.mu.Unlock()
	for _, role := range []string{"producer", "worker", "sink"} {
		if role == "sink" && beforeSink != nil {
			beforeSink()
		}
		var group []*child
		for _, ch := range children {
			if ch.role == role && !ch.exited() {
				ch.reported = true
				_ = ch.cmd.Process.Signal(syscall.SIGTERM)
				group = append(group, ch)
			}
		}
		deadline := time.After(10 * time.Second)
		for _, ch := range group {
			select {
			case <-ch.done:
			case <-deadline:
				_ = ch.cmd.Process.Kill()
				<-ch.done
			}
		}
	}
	s.logs.Wait()
}

// status asks the sink what the run holds.
func (s *supervisor) status(ctx context.Context, sink *reqrep.Requester) (SinkStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return reqrep.Ask[SinkStatus](ctx, sink, SinkRequest{Op: "status", Run: s.run})
}

// watchEvents follows the announcements and the producer's surveys of the
// workers.
func (s *supervisor) watchEvents(sub *pubsub.Subscriber) {
	for m := range sub.C() {
		switch m.Topic {
		case topicReady:
			s.loadMu.Lock()
			s.seen++
			s.loadMu.Unlock()
		case topicLoad:
			loads, err := spmesh.Decode[[]Load](m)
			if err != nil {
				continue
			}
			s.loadMu.Lock()
			clear(s.load)
			for _, l := range loads {
				s.load[l.Worker] = l
				if !slices.Contains(s.answered, l.Worker) {
					s.answered = append(s.answered, l.Worker)
				}
			}
			s.loadMu.Unlock()
		}
	}
}

func (s *supervisor) progress(st SinkStatus, total int, elapsed time.Duration) string {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	rate := float64(st.Stored) / elapsed.Seconds()
	return progressLine(st.Stored, total, rate, st.PerWorker, s.load, 20)
}

// printSummary prints the run's outcome.
func printSummary(w io.Writer, s Summary) {
	fmt.Fprintln(w)
	state := "done"
	if s.Interrupted {
		state = "interrupted"
	}
	fmt.Fprintf(w, "imagepipeline %s: run %s\n", state, s.Run)
	fmt.Fprintf(w, "  processed     %d of %d images in %v (%.1f images/s)\n", s.Processed, s.Total,
		s.Elapsed.Round(time.Millisecond), float64(s.Processed)/s.Elapsed.Seconds())
	lost := "none lost"
	if n := s.Total - s.Processed; n > 0 {
		lost = fmt.Sprintf("%d not processed", n)
	}
	fmt.Fprintf(w, "  delivery      %s; %d duplicates (at-least-once redeliveries, stored once)\n", lost, s.Duplicates)
	if len(s.Failed) > 0 {
		ids := slices.Sorted(maps.Keys(s.Failed))
		fmt.Fprintf(w, "  unreadable    %d images could not be processed, e.g. %s: %s\n", len(ids), ids[0], s.Failed[ids[0]])
	}
	if s.Announced > 0 {
		fmt.Fprintf(w, "  announced     %d images seen on pub/sub (at most once)\n", s.Announced)
	}
	var names []string
	for n := range s.PerWorker {
		names = append(names, n)
	}
	slices.Sort(names)
	var per []string
	for _, n := range names {
		note := ""
		if slices.Contains(s.Killed, n) {
			note = " (killed)"
		}
		if slices.Contains(s.Started, n) {
			note = " (joined late)"
		}
		per = append(per, fmt.Sprintf("%s %d%s", n, s.PerWorker[n], note))
	}
	fmt.Fprintf(w, "  per worker    %s\n", strings.Join(per, ", "))
	if len(s.ServiceTimes) > 0 {
		var times []string
		for _, n := range slices.Sorted(maps.Keys(s.ServiceTimes)) {
			times = append(times, fmt.Sprintf("%s %v", n, s.ServiceTimes[n].Round(time.Millisecond)))
		}
		fmt.Fprintf(w, "  service time  %s (mean per job, from the producer's per-peer stats)\n", strings.Join(times, ", "))
	}
	if slices.Contains(s.Killed, "producer") {
		fmt.Fprintf(w, "  producer      killed (SIGKILL) after %d images submitted; its successor recovered %d unacked jobs from the outbox and submitted the rest\n",
			s.ProducerResumed, s.ProducerRecovered)
	}
	if s.Restored > 0 {
		fmt.Fprintf(w, "  sink restart  the new sink found %d images already stored; the rest came again from the workers\n", s.Restored)
	}
	if s.Secure {
		plain := 0
		for _, ep := range s.Endpoints {
			if !strings.Contains(ep, "@tls+tcp://") {
				plain++
			}
		}
		fmt.Fprintf(w, "  security      %d endpoints advertised, %d of them plaintext; mutual TLS, node names verified\n", len(s.Endpoints), plain)
	}
	fmt.Fprintf(w, "  output        %s\n", s.Dir)
	if s.Sheet != "" {
		fmt.Fprintf(w, "  contact sheet %s\n", s.Sheet)
	}
}

// demoEndpoints are the services and roles that listen, whose endpoints
// the secure mode records.
var demoEndpoints = []struct {
	service string
	role    spmesh.Role
}{
	{svcEvents, spmesh.RolePublisher}, {svcJobs, spmesh.RoleWorker}, {svcResults, spmesh.RoleWorker},
	{svcLoad, spmesh.RoleSurveyor}, {svcSink, spmesh.RoleReplier},
}

// noteEndpoints records every endpoint advertised now (secure mode).
func (s *supervisor) noteEndpoints() {
	if s.eps == nil {
		return
	}
	for _, d := range demoEndpoints {
		for _, ep := range s.node.Endpoints(d.service, d.role) {
			s.eps[ep.Service+"/"+string(ep.Role)+"@"+ep.Addr] = true
		}
	}
}
