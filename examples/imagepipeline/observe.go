package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/metrics"
	"github.com/spmesh/spmesh/pipeline"
	"github.com/spmesh/spmesh/pubsub"
	"github.com/spmesh/spmesh/survey"
)

// observer makes a role process observable: its sockets and node go into
// a metrics collector, the node answers stats surveys (spmesh stats, spmesh
// top --join SEED), and with -metrics the collector is served over HTTP
// at /metrics.
type observer struct {
	log  *slog.Logger
	c    *metrics.Collector
	resp *survey.Respondent
	srv  *http.Server
	done chan struct{}
}

// member is a role process's place in the mesh: its discovery node and
// the observer of its sockets.
type member struct {
	node *discovery.Node
	obs  *observer
	log  *slog.Logger
}

// joinMesh starts the node of a role process and its observer; leave undoes
// both.
func (c *config) joinMesh(log *slog.Logger) (*member, error) {
	node, err := c.newNode(log)
	if err != nil {
		return nil, err
	}
	obs, err := observe(*c, node, log)
	if err != nil {
		leave(node, log)
		return nil, err
	}
	return &member{node: node, obs: obs, log: log}, nil
}

// leave stops the observer, then leaves the mesh.
func (m *member) leave() {
	m.obs.close()
	leave(m.node, m.log)
}

// events opens the publisher of the run's events (svcEvents), observed.
func (m *member) events() (*pubsub.Publisher, error) {
	pub, err := pubsub.NewPublisher(pubsub.WithDiscovery(m.node, svcEvents))
	if err != nil {
		return nil, err
	}
	m.obs.add(svcEvents, "publisher", pub)
	return pub, nil
}

// observe starts the observer of a role process. Its failures are logged,
// never fatal to the role, except a -metrics address that cannot be
// listened on.
func observe(c config, node *discovery.Node, log *slog.Logger) (*observer, error) {
	o := &observer{log: log, c: metrics.NewCollector()}
	if err := o.c.AddNode(node); err != nil {
		log.Warn("metrics", "err", err)
	}
	var err error
	if o.resp, err = metrics.ServeMesh(node, o.c); err != nil {
		log.Warn("stats responder", "err", err)
	}
	if c.metrics == "" {
		return o, nil
	}
	ln, err := net.Listen("tcp", c.metrics)
	if err != nil {
		o.close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(o.c))
	o.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	o.done = make(chan struct{})
	go func() {
		defer close(o.done)
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server", "err", err)
		}
	}()
	log.Info("metrics on http://" + ln.Addr().String() + "/metrics")
	return o, nil
}

// add exports a socket's figures, labelled with its service and role.
func (o *observer) add(service, role string, s any) {
	if err := o.c.Add(service, role, s); err != nil {
		o.log.Warn("metrics", "err", err)
	}
}

// close stops the HTTP server and the stats responder.
func (o *observer) close() {
	if o.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if o.srv.Shutdown(ctx) != nil {
			o.srv.Close()
		}
		<-o.done
	}
	if o.resp != nil {
		o.resp.Close()
	}
}

// serviceTimes returns the mean job time of each worker the producer has
// had replies from (send to ack: the worker's service time plus the
// network), from the producer's per-peer stats, by worker name. A peer is
// named by the worker endpoint it was dialed at; one no longer advertised
// (a worker gone) keeps its address as its name.
func serviceTimes(node *discovery.Node, jobs *pipeline.Producer) map[string]time.Duration {
	names := map[string]string{}
	for _, ep := range node.Endpoints(svcJobs, spmesh.RoleWorker) {
		addr := ep.Addr
		if _, hostPort, ok := strings.Cut(addr, "://"); ok {
			addr = hostPort
		}
		names[addr] = ep.Node
	}
	out := map[string]time.Duration{}
	for _, p := range jobs.Stats().PerPeer {
		if p.Done == 0 {
			continue
		}
		name := names[p.Addr]
		if name == "" {
			name = p.Addr
		}
		out[name] = p.MeanReplyTime
	}
	return out
}
