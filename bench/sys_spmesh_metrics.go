package main

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spmesh/spmesh/metrics"
)

// scrapeEvery is how often the metrics rows gather their registry: ten
// times faster than a usual Prometheus scrape, the worst realistic case.
const scrapeEvery = 100 * time.Millisecond

// spmeshMetricsSystem is the plain spmesh system (same code, same
// options) with every socket added to a metrics.Collector registered on a
// Prometheus registry, and a goroutine gathering that registry every
// scrapeEvery for the whole run, for the rows "with metrics": pub/sub and
// req/rep, compared with the plain spmesh rows of the same run.
func spmeshMetricsSystem() *system {
	nw := spmeshNet{listen: loopback, metrics: true}
	return &system{
		name:    "spmesh+metrics",
		partial: true,
		pubsub:  func(size, subs int) (*stream, error) { return spmeshPubSubOver(nw, size, subs) },
		reqrep:  func(size int) (*rpc, error) { return spmeshReqRepOver(nw, size) },
	}
}

// observer exports one scenario's sockets. A nil observer (the plain
// rows) does nothing.
type observer struct {
	c   *metrics.Collector
	reg *prometheus.Registry
}

func newObserver(on bool) (*observer, error) {
	if !on {
		return nil, nil
	}
	o := &observer{c: metrics.NewCollector(), reg: prometheus.NewRegistry()}
	if err := o.reg.Register(o.c); err != nil {
		return nil, err
	}
	return o, nil
}

// add exports s labelled bench and role.
func (o *observer) add(role string, s any) error {
	if o == nil {
		return nil
	}
	return o.c.Add("bench", role, s)
}

// scrape starts gathering the registry every scrapeEvery, as Prometheus
// would (every family built and encoded), until the closer it adds runs.
// Call it last, so that the scraper stops before the sockets close.
func (o *observer) scrape(cs *closers) {
	if o == nil {
		return
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(scrapeEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if _, err := o.reg.Gather(); err != nil {
					panic("bench: gather: " + err.Error())
				}
			case <-stop:
				return
			}
		}
	})
	cs.add(func() error {
		close(stop)
		wg.Wait()
		return nil
	})
}
