package metrics_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spmesh/spmesh/metrics"
	"github.com/spmesh/spmesh/pipeline"
	"github.com/spmesh/spmesh/pubsub"
	"github.com/spmesh/spmesh/reqrep"
	"github.com/spmesh/spmesh/survey"
)

// TestEveryType adds one socket of each of the ten types and checks that
// each is accepted, exports the common figures plus its own, and that the
// whole passes a pedantic registry and the linter.
func TestEveryType(t *testing.T) {
	type closer interface{ Close() error }
	open := func(s closer, err error) closer {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	socks := map[string]closer{
		"publisher":  open(pubsub.NewPublisher()),
		"subscriber": open(pubsub.NewSubscriber()),
		"requester":  open(reqrep.NewRequester()),
		"replier": open(reqrep.NewReplier(reqrep.HandlerFunc(func(context.Context, *reqrep.Request) (any, error) {
			return nil, nil
		}))),
		"pusher":   open(pipeline.NewPusher()),
		"puller":   open(pipeline.NewPuller()),
		"producer": open(pipeline.NewProducer()),
		"worker": open(pipeline.NewWorker(pipeline.HandlerFunc(func(context.Context, *pipeline.Job) error {
			return nil
		}))),
		"surveyor": open(survey.NewSurveyor()),
		"respondent": open(survey.NewRespondent(survey.HandlerFunc(func(context.Context, *survey.Question) (any, error) {
			return nil, nil
		}))),
	}
	c := metrics.NewCollector()
	for role, s := range socks {
		if err := c.Add("svc", role, s); err != nil {
			t.Fatalf("Add %s: %v", role, err)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for name, want := range map[string]int{
		"spmesh_messages_sent_total":   10,
		"spmesh_peers":                 10,
		"spmesh_in_flight":             6, // requester, replier, producer, worker, surveyor, respondent
		"spmesh_handler_errors_total":  3, // replier, worker, respondent
		"spmesh_remote_errors_total":   2, // requester, producer
		"spmesh_draining":              10,
		"spmesh_dropped_gap_total":     10,
		"spmesh_dropped_late_total":    10,
		"spmesh_dropped_expired_total": 10,
		"spmesh_sent_bytes_total":      10,
		"spmesh_received_bytes_total":  10,
		"spmesh_reply_seconds":         3, // requester, producer, surveyor
	} {
		if got := promtest.CollectAndCount(c, name); got != want {
			t.Errorf("%s: got %d series, want %d", name, got, want)
		}
	}
	problems, err := promtest.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}
