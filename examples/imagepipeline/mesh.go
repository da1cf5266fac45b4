package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/spmesh/spmesh/discovery"
)

// The service names the roles find each other by. Nothing else is shared
// between processes: no addresses, only one seed to join the mesh.
const (
	svcEvents  = "imagepipeline.events"  // pub/sub: producer and sink announce, anyone listens
	svcJobs    = "imagepipeline.jobs"    // at-least-once jobs: producer -> workers
	svcResults = "imagepipeline.results" // at-least-once jobs: workers -> sink
	svcLoad    = "imagepipeline.load"    // survey: producer asks workers for their load
	svcSink    = "imagepipeline.sink"    // req/rep: status and finish requests to the sink
	meshLabel  = "imagepipeline"         // keeps this demo's gossip apart from other meshes
)

// The pub/sub topics on svcEvents.
const (
	topicReady  = "images.ready"  // Announcement: an image was handed to the workers
	topicStored = "images.stored" // Stored: the sink stored a result
	topicLoad   = "workers.load"  // []Load: the producer's latest survey of the workers
)

// maxMessage bounds frames on every socket: source images travel in jobs.
const maxMessage = 64 << 20

// ImageJob is the job the producer hands to the workers.
type ImageJob struct {
	Run  string // the run it belongs to
	ID   string // the image's id, unique in the run
	Name string // source file name, or "synthetic"
	Data []byte // the encoded image (JPEG, PNG, ...)
}

// Announcement is published on topicReady for every image handed out.
type Announcement struct {
	Run, ID, Name string
	Width, Height int
	Bytes         int
}

// Variant is one extra output of a worker besides the thumbnail.
type Variant struct {
	Name string // e.g. "gray", "half"
	Ext  string // ".jpg" or ".png"
	Data []byte
}

// Result is the job a worker hands to the sink for each image.
type Result struct {
	Run, ID  string
	Worker   string        // the worker's name
	Attempt  int           // delivery attempt of the image job that made it
	SrcW     int           // source size
	SrcH     int           //
	Thumb    []byte        // PNG thumbnail
	Variants []Variant     // the extra transform
	Took     time.Duration // processing time on the worker
	Err      string        // the image could not be processed (unreadable): no outputs
}

// Stored is published on topicStored when the sink stores a result.
type Stored struct {
	Run, ID, Worker string
	Duplicate       bool
}

// Load is one worker's answer to the producer's survey.
type Load struct {
	Worker   string
	PID      int
	InFlight int // jobs being processed now
	Done     int // jobs finished since the worker started
	Dups     int // deliveries of jobs it had already done, acked without running again
}

// SinkRequest asks the sink something, over req/rep.
type SinkRequest struct {
	Op     string   // "status" or "finish"
	Run    string   // the run ("" for the latest one the sink saw)
	Expect []string // finish: the ids the run must hold
}

// SinkStatus is the sink's answer: what it holds for a run.
type SinkStatus struct {
	Run        string
	Dir        string            // where the run's files are (on the sink's host)
	Stored     int               // distinct images with a result (Failed included)
	Failed     map[string]string // images that could not be processed, with why
	Duplicates int               // results received again for an image already stored
	PerWorker  map[string]int    // distinct images stored, by the worker that made them first
	Finished   bool              // the producer finished the run (see Missing and Sheet)
	Missing    []string          // expected ids not stored when the run was finished
	Sheet      string            // the contact sheet's path, once finished
	Restored   int               // images found on disk when the sink (re)started
}

// nodeConfig builds the discovery configuration for one process gossiping
// on bind ("host:port", "host" or ":port"; port 0 picks a free one). A
// loopback host gets the local preset (fast timings, for one machine),
// anything else the LAN preset.
func nodeConfig(name, bind, join string, logger *slog.Logger) (discovery.Config, error) {
	host, port, err := net.SplitHostPort(bind)
	if err != nil {
		host, port = bind, strconv.Itoa(discovery.DefaultPort)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return discovery.Config{}, fmt.Errorf("-gossip %q: bad port", bind)
	}
	var c discovery.Config
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		c = discovery.LocalConfig()
	} else {
		c = discovery.LANConfig()
	}
	if host != "" {
		c.BindAddr = host
	}
	c.BindPort = p
	c.Name = name
	c.Label = meshLabel
	c.Logger = logger
	if join != "" {
		c.Seeds = []string{join}
	}
	return c, nil
}

// leave leaves the mesh gracefully, bounded by a few seconds.
func leave(n *discovery.Node, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	if err := n.Leave(ctx); err != nil {
		log.Warn("leave", "err", err)
	}
	log.Debug("left the mesh", "took", time.Since(start))
}
