package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/pipeline"
	"github.com/spmesh/spmesh/pubsub"
	"github.com/spmesh/spmesh/reqrep"
	"github.com/spmesh/spmesh/survey"
)

// source yields the run's images: files of -in, or synthetic ones.
type source struct {
	files []string
	ids   []string
	n     int
	size  int // synthetic images' -size
}

func newSource(c config) (*source, error) {
	if c.in == "" {
		s := &source{n: c.n, size: c.size}
		for i := range c.n {
			s.ids = append(s.ids, fmt.Sprintf("img-%04d", i+1))
		}
		return s, nil
	}
	files, err := listImages(c.in)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no images in %s", c.in)
	}
	s := &source{files: files, n: len(files)}
	seen := map[string]bool{}
	for _, f := range files {
		id := imageID(f)
		for k := 2; seen[id]; k++ { // a.jpg and a.png
			id = fmt.Sprintf("%s-%d", imageID(f), k)
		}
		seen[id] = true
		s.ids = append(s.ids, id)
	}
	return s, nil
}

// image returns image i (from 0): its name and encoded bytes.
func (s *source) image(i int) (name string, data []byte, err error) {
	if s.files == nil {
		data, err := encodeJPEG(syntheticImage(i+1, s.size))
		return "synthetic", data, err
	}
	data, err = os.ReadFile(s.files[i])
	return filepath.Base(s.files[i]), data, err
}

// runProducer announces every image (pub/sub), hands each to the workers
// as an at-least-once job, surveys the workers' load while they work, and
// when every job is acked asks the sink to finish the run (req/rep).
func runProducer(ctx context.Context, c config, stdout io.Writer, log *slog.Logger) error {
	src, err := newSource(c)
	if err != nil {
		return err
	}
	run := c.runID
	if run == "" && c.outbox != "" {
		// A producer restarted on its outbox goes on with the unfinished run.
		if last, err := loadProgress(c.outbox); err == nil && !last.Finished && imageID(last.Run) == last.Run {
			run = last.Run
		}
	}
	if run == "" {
		run = newRunID()
	}
	m, err := c.joinMesh(log)
	if err != nil {
		return err
	}
	defer m.leave()
	node, obs := m.node, m.obs

	pub, err := m.events()
	if err != nil {
		return err
	}
	defer pub.Close()
	// The workers' respondents announce themselves through discovery: a
	// survey ends as soon as every one of them has answered.
	sv, err := survey.NewSurveyor(survey.WithDiscovery(node, svcLoad), survey.WithTimeout(400*time.Millisecond))
	if err != nil {
		return err
	}
	defer sv.Close()
	obs.add(svcLoad, "surveyor", sv)
	sink, err := reqrep.NewRequester(reqrep.WithDiscovery(node, svcSink), reqrep.WithWaitForReplier(),
		reqrep.WithAttemptTimeout(10*time.Second))
	if err != nil {
		return err
	}
	defer sink.Close()
	obs.add(svcSink, "requester", sink)
	// The jobs: each image goes to one worker and is delivered again if that
	// worker nacks it, goes away, or does not ack within the ack timeout.
	opts := []pipeline.Option{pipeline.WithDiscovery(node, svcJobs),
		pipeline.WithWaitForWorker(),              // workers may join after us
		pipeline.WithMaxInFlight(c.window),        // jobs sent and not yet acked
		pipeline.WithAckTimeout(30 * time.Second), // a job includes handing its result to the sink
		pipeline.WithMaxAttempts(20),
		pipeline.WithMaxMessageSize(maxMessage),
		pipeline.WithDeadLetter(func(dl *pipeline.DeadLetter) {
			log.Error("image gave up after every attempt", "job", dl.ID, "attempts", dl.Attempts, "err", dl.Err)
		})}
	// With an outbox, a job is on disk (fsynced) before Submit accepts it,
	// and a producer restarted on the same file sends again every job the
	// last one had not seen acked (Stats().Recovered), before new ones.
	if c.outbox != "" {
		opts = append(opts, pipeline.WithOutbox(c.outbox))
	}
	jobs, err := pipeline.NewProducer(opts...)
	if err != nil {
		return err
	}
	defer jobs.Close()
	obs.add(svcJobs, "producer", jobs)
	prog := producerProgress{Run: run, Recovered: int(jobs.Stats().Recovered)}
	if c.outbox != "" {
		// Where to resume: the images before prog.Submitted were accepted by
		// the last producer, so each is stored (acked) or in the outbox
		// (recovered just now); see saveProgress.
		if last, err := loadProgress(c.outbox); err == nil && last.Run == run {
			prog.Submitted = min(last.Submitted, src.n)
		}
		if prog.Recovered > 0 || prog.Submitted > 0 {
			log.Info("producer resumed from its outbox", "recovered", prog.Recovered, "skipped", prog.Submitted)
		}
		if err := saveProgress(c.outbox, prog); err != nil {
			return err
		}
	}

	var con *console
	if !c.child {
		con = newConsole(stdout)
	}
	loads := &loadBoard{}
	surveyCtx, stopSurvey := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Go(func() {
		surveyLoop(surveyCtx, sv, pub, loads, func() {
			st := jobs.Stats()
			log.Debug("jobs", "workers", workerNames(node), "connected", st.Peers, "in flight", st.InFlight,
				"acked", st.Acked, "redelivered", st.Resent)
		})
	})
	if con != nil {
		bg.Go(func() { showProgress(surveyCtx, con, jobs, src.n, loads) })
	}
	defer bg.Wait()
	defer stopSurvey()

	// Jobs go to the worker connections ready to send, favouring the worker
	// that answered last (mangos REQ): workers connected after the first
	// jobs went out get few. Give the connections to the workers that
	// discovery already knows a moment to come up, so the first jobs
	// spread over all of them.
	warmUp(ctx, node, jobs, 3*time.Second)
	start := time.Now()
	log.Info("producing", "run", run, "images", src.n, "workers", jobs.Stats().Peers)
	results := make([]*pipeline.Result, 0, src.n)
	resumed := prog.Submitted
	for i, id := range src.ids[resumed:] {
		i += resumed
		name, data, err := src.image(i)
		if err != nil {
			return err
		}
		ann := Announcement{Run: run, ID: id, Name: name, Bytes: len(data)}
		if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil {
			ann.Width, ann.Height = cfg.Width, cfg.Height
		}
		// At most once: whoever listens now hears it; nobody waits for it.
		_ = pub.Publish(ctx, topicReady, ann)
		// A stable job id (run + image): a worker that sees the job again
		// recognises it (WithDedup).
		r, err := jobs.Submit(ctx, pipeline.Task{
			ID:   pipeline.JobIDOf(run + "/" + id),
			Body: ImageJob{Run: run, ID: id, Name: name, Data: data},
		})
		if err != nil {
			return fmt.Errorf("image %s: %w", id, err)
		}
		results = append(results, r)
		if c.outbox != "" {
			prog.Submitted = i + 1
			if err := saveProgress(c.outbox, prog); err != nil {
				return err
			}
		}
	}
	for i, r := range results {
		if err := r.Wait(ctx); err != nil {
			return fmt.Errorf("image %s: %w", src.ids[resumed+i], err)
		}
	}
	// The jobs recovered from the outbox have no Result here: Drain waits
	// for them too (and for nothing else: every other job is acked).
	ps := jobs.Stats()
	prog.ServiceTimes = serviceTimes(node, jobs)
	if err := jobs.Drain(ctx); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	stopSurvey()
	bg.Wait()
	elapsed := time.Since(start)

	// Every image is acked, and a worker acks only once the sink has acked
	// its result: the sink holds them all. Ask it to check and finish.
	st, err := reqrep.Ask[SinkStatus](ctx, sink, SinkRequest{Op: "finish", Run: run, Expect: src.ids})
	if err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	log.Info("run finished", "run", run, "stored", st.Stored, "missing", len(st.Missing),
		"redeliveries", ps.Resent, "sheet", st.Sheet)
	if con != nil {
		con.Done(progressLine(int(ps.Acked), src.n, float64(ps.Acked)/elapsed.Seconds(), st.PerWorker, nil, 20))
		printSummary(stdout, Summary{
			Run: run, Dir: st.Dir, Sheet: st.Sheet, Total: src.n, Processed: st.Stored,
			Duplicates: st.Duplicates, Missing: st.Missing, Failed: st.Failed, PerWorker: st.PerWorker, Elapsed: elapsed,
			ServiceTimes: prog.ServiceTimes,
		})
	}
	if len(st.Missing) > 0 {
		return fmt.Errorf("the sink misses %d images", len(st.Missing))
	}
	if c.outbox != "" {
		prog.Finished = true // the next producer on this outbox starts a new run
		return saveProgress(c.outbox, prog)
	}
	return nil
}

// producerProgress is where a producer with an outbox stands in its run,
// kept next to the outbox (FILE.progress) for the producer restarted on it
// and for the demo's summary.
type producerProgress struct {
	Run       string
	Submitted int  // images 0..Submitted-1 were accepted (stored in the outbox)
	Recovered int  // jobs this producer recovered from the outbox at start
	Finished  bool // the sink confirmed the run
	// ServiceTimes is each worker's mean job time, by name, from the
	// producer's per-peer stats once every job is acked (see serviceTimes).
	ServiceTimes map[string]time.Duration `json:",omitempty"`
}

// saveProgress writes p for the outbox at path, after the jobs it counts
// were accepted (fsynced in the outbox). It is written whole (temporary
// file, then rename) and not fsynced: after a process crash the last
// rename is there; after a host crash an older one may be, which only
// makes the next producer submit some images again (same job ids: counted
// as duplicates, never lost). It is never ahead of the outbox.
func saveProgress(path string, p producerProgress) error {
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	tmp := path + ".progress.tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path+".progress")
}

// loadProgress reads what saveProgress wrote for the outbox at path. A
// missing or unreadable file means starting from the first image
// (duplicates at worst).
func loadProgress(path string) (producerProgress, error) {
	var p producerProgress
	data, err := os.ReadFile(path + ".progress")
	if err != nil {
		return p, err
	}
	err = json.Unmarshal(data, &p)
	return p, err
}

// warmUp waits, up to limit, until the producer is connected to every
// worker discovery knows of (at least one).
func warmUp(ctx context.Context, node *discovery.Node, jobs *pipeline.Producer, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if known := len(node.Endpoints(svcJobs, spmesh.RoleWorker)); known > 0 && jobs.Stats().Peers >= known {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// workerNames lists the nodes advertising a worker for the jobs.
func workerNames(node *discovery.Node) []string {
	var names []string
	for _, ep := range node.Endpoints(svcJobs, spmesh.RoleWorker) {
		if !slices.Contains(names, ep.Node) {
			names = append(names, ep.Node)
		}
	}
	return names
}

// loadBoard holds the latest survey of the workers.
type loadBoard struct {
	mu    sync.Mutex
	loads map[string]Load
}

func (b *loadBoard) set(ls []Load) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.loads = map[string]Load{}
	for _, l := range ls {
		b.loads[l.Worker] = l
	}
}

func (b *loadBoard) get() map[string]Load {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.loads
}

// every calls f every d until ctx ends or f returns false.
func every(ctx context.Context, d time.Duration, f func() bool) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !f() {
			return
		}
	}
}

// surveyLoop asks the workers for their load twice a second and publishes
// the answers (topicLoad) for whoever shows progress; after each round it
// calls report.
func surveyLoop(ctx context.Context, sv *survey.Surveyor, pub *pubsub.Publisher, board *loadBoard, report func()) {
	every(ctx, 500*time.Millisecond, func() bool {
		rs, err := sv.Survey(ctx, "load?")
		if err != nil {
			return false
		}
		var loads []Load
		for resp, err := range rs.All(ctx) {
			if err != nil {
				break
			}
			if l, err := spmesh.Decode[Load](resp); err == nil {
				loads = append(loads, l)
			}
		}
		rs.Close()
		report()
		slices.SortFunc(loads, func(a, b Load) int { return strings.Compare(a.Worker, b.Worker) })
		board.set(loads)
		_ = pub.Publish(ctx, topicLoad, loads)
		return true
	})
}

// showProgress draws the producer's progress line (with -role producer).
func showProgress(ctx context.Context, con *console, jobs *pipeline.Producer, total int, board *loadBoard) {
	start := time.Now()
	every(ctx, 200*time.Millisecond, func() bool {
		acked := int(jobs.Stats().Acked)
		loads := board.get()
		per := map[string]int{}
		for w, l := range loads {
			per[w] = l.Done
		}
		con.Progress(progressLine(acked, total, float64(acked)/time.Since(start).Seconds(), per, loads, 20))
		return true
	})
}
