package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/metrics"
	"github.com/spmesh/spmesh/pipeline"
	"github.com/spmesh/spmesh/pubsub"
	"github.com/spmesh/spmesh/survey"
)

// sameBytes waits until what a sent equals what b received and the
// reverse (a lossless pair over TCP: every frame written by one is read by
// the other), and that a sent something.
func sameBytes(t *testing.T, an string, a func() spmesh.Stats, bn string, b func() spmesh.Stats) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, func() error {
		sa, sb := a(), b()
		if sa.BytesSent == 0 {
			return fmt.Errorf("%s: no bytes sent", an)
		}
		if sa.BytesSent != sb.BytesReceived || sb.BytesSent != sa.BytesReceived {
			return fmt.Errorf("%s sent %d, received %d; %s sent %d, received %d",
				an, sa.BytesSent, sa.BytesReceived, bn, sb.BytesSent, sb.BytesReceived)
		}
		return nil
	})
}

// TestBytesPubSub: the publisher's bytes are the subscriber's (messages),
// and the subscriber's the publisher's (interest frames).
func TestBytesPubSub(t *testing.T) {
	addr := testutil.FreeTCP(t)
	p, err := pubsub.NewPublisher(pubsub.WithListen(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := pubsub.NewSubscriber(pubsub.WithDial(addr), pubsub.WithSubscribe("img"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// The subscription reaches the publisher before the first message is
	// sent: wait for its interest frame.
	testutil.Eventually(t, 5*time.Second, func() error {
		if p.Stats().BytesReceived == 0 {
			return errors.New("no interest frame yet")
		}
		return nil
	})
	const n = 50
	for i := range n {
		if err := p.Publish(ctx, "img", i); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if _, err := s.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sameBytes(t, "publisher", p.Stats, "subscriber", func() spmesh.Stats { return s.Stats().Stats })
}

// TestBytesPipeline: a pusher and a puller, a producer and a worker.
func TestBytesPipeline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 30

	addr := testutil.FreeTCP(t)
	pl, err := pipeline.NewPuller(pipeline.WithListen(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	ps, err := pipeline.NewPusher(pipeline.WithDial(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	for i := range n {
		if err := ps.Push(ctx, fmt.Sprintf("job %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if _, err := pl.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sameBytes(t, "pusher", ps.Stats, "puller", pl.Stats)

	addr = testutil.FreeTCP(t)
	w, err := pipeline.NewWorker(pipeline.HandlerFunc(func(context.Context, *pipeline.Job) error { return nil }), pipeline.WithListen(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	pr, err := pipeline.NewProducer(pipeline.WithDial(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if err := pr.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := pr.Produce(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	sameBytes(t, "producer", func() spmesh.Stats { return pr.Stats().Stats }, "worker", func() spmesh.Stats { return w.Stats().Stats })
	if h := pr.Stats().ReplyTime; h.Count != n || h.Sum <= 0 {
		t.Errorf("producer reply time: count %d, sum %v; want %d and > 0", h.Count, h.Sum, n)
	}
}

// TestBytesSurvey: one surveyor, one respondent.
func TestBytesSurvey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr := testutil.FreeTCP(t)
	s, err := survey.NewSurveyor(survey.WithListen(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := survey.NewRespondent(survey.HandlerFunc(func(context.Context, *survey.Question) (any, error) {
		return "here", nil
	}), survey.WithDial(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := s.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	const n = 5
	for i := range n {
		rs, err := s.Survey(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rs.Next(ctx); err != nil {
			t.Fatalf("survey %d: %v", i, err)
		}
		rs.Close()
	}
	sameBytes(t, "surveyor", func() spmesh.Stats { return s.Stats().Stats }, "respondent", func() spmesh.Stats { return r.Stats().Stats })
	if h := s.Stats().ReplyTime; h.Count != n {
		t.Errorf("surveyor reply time: count %d, want %d", h.Count, n)
	}
}

// TestDropCauses: a publisher's full queue counts its drops as
// DroppedQueueFull; messages still queued when a puller closes count as
// DroppedClosed. Both are in Dropped and exported.
func TestDropCauses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	addr := testutil.FreeTCP(t)
	p, err := pubsub.NewPublisher(pubsub.WithListen(addr), pubsub.WithQueueLen(1), pubsub.WithCodec(spmesh.Raw))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := pubsub.NewSubscriber(pubsub.WithDial(addr), pubsub.WithSubscribe("x"), pubsub.WithQueueLen(1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close() // never read
	if err := p.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 4096)
	// Publish until the publisher's one-message queue overflows (the
	// subscriber's socket buffers take some first).
	for p.Stats().Dropped == 0 {
		if err := ctx.Err(); err != nil {
			t.Fatalf("nothing dropped: %v", err)
		}
		if err := p.PublishBytes(ctx, "x", nil, body); err != nil {
			t.Fatal(err)
		}
	}
	if st := p.Stats(); st.DroppedQueueFull != st.Dropped || st.DroppedClosed != 0 {
		t.Errorf("publisher: dropped %d, of which queue full %d and closed %d; want all queue full", st.Dropped, st.DroppedQueueFull, st.DroppedClosed)
	}

	const n = 10
	addr = testutil.FreeTCP(t)
	pl, err := pipeline.NewPuller(pipeline.WithListen(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	ps, err := pipeline.NewPusher(pipeline.WithDial(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	for i := range n {
		if err := ps.Push(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if got := pl.Stats().Received; got != n {
			return fmt.Errorf("puller queued %d, want %d", got, n)
		}
		return nil
	})
	pl.Close() // with n messages queued, never taken
	c := metrics.NewCollector()
	if err := c.Add("jobs", "puller", pl); err != nil {
		t.Fatal(err)
	}
	got := scrape(t, serve(t, c))
	lb := `{role="puller",service="jobs"}`
	want(t, got, "spmesh_dropped_total"+lb, n)
	want(t, got, "spmesh_dropped_closed_total"+lb, n)
	want(t, got, "spmesh_dropped_queue_full_total"+lb, 0)
}

// TestBytesExactBare counts bare frames, whose size is known: the topic's
// bytes and the body's. A bare subscriber sends nothing (no interest
// frames), so the publisher receives nothing.
func TestBytesExactBare(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr := testutil.FreeTCP(t)
	p, err := pubsub.NewPublisher(pubsub.WithListen(addr), pubsub.WithBareFrames())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := pubsub.NewSubscriber(pubsub.WithDial(addr), pubsub.WithSubscribe("img."), pubsub.WithBareFrames())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := p.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	const n, size = 25, 1000
	body := make([]byte, size)
	for range n {
		if err := p.PublishBytes(ctx, "img.png", nil, body); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if _, err := s.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	const frames = uint64(n * (len("img.png") + size))
	testutil.Eventually(t, 5*time.Second, func() error {
		ps, ss := p.Stats(), s.Stats()
		if ps.BytesSent != frames || ss.BytesReceived != frames {
			return fmt.Errorf("publisher sent %d bytes, subscriber received %d; want %d", ps.BytesSent, ss.BytesReceived, frames)
		}
		if ps.BytesReceived != 0 || ss.BytesSent != 0 {
			return fmt.Errorf("publisher received %d bytes, subscriber sent %d; want 0 (bare: no interest frames)", ps.BytesReceived, ss.BytesSent)
		}
		return nil
	})
}
