package metrics_test

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spmesh/spmesh/metrics"
	"github.com/spmesh/spmesh/pubsub"
)

func ExampleCollector() {
	pub, err := pubsub.NewPublisher(pubsub.WithListen("inproc://metrics-example"))
	if err != nil {
		panic(err)
	}
	defer pub.Close()

	c := metrics.NewCollector()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	if err := c.Add("images", "publisher", pub); err != nil {
		panic(err)
	}

	families, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range families {
		if f.GetName() == "spmesh_peers" {
			m := f.GetMetric()[0]
			fmt.Println(f.GetName(), m.GetLabel()[0].GetValue(), m.GetLabel()[1].GetValue(), m.GetGauge().GetValue())
		}
	}
	// Output: spmesh_peers publisher images 0
}
