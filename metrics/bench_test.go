package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spmesh/spmesh/metrics"
	"github.com/spmesh/spmesh/reqrep"
)

// BenchmarkGather is the cost of one scrape (without HTTP or text
// encoding) of a collector holding one requester: the only cost the
// collector adds, since nothing runs per message.
func BenchmarkGather(b *testing.B) {
	r, err := reqrep.NewRequester()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	c := metrics.NewCollector()
	if err := c.Add("svc", "requester", r); err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshot is what a stats responder does per survey (without
// encoding) for a collector holding one requester.
func BenchmarkSnapshot(b *testing.B) {
	r, err := reqrep.NewRequester()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	c := metrics.NewCollector()
	if err := c.Add("svc", "requester", r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if socks, _ := c.Snapshot(""); len(socks) != 1 {
			b.Fatal("no socket")
		}
	}
}
