package main

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/pubsub"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestScenarios runs every cell of the table briefly: each system that is
// built must move messages (or make round trips) in each scenario, and the
// table must render a row for every cell.
func TestScenarios(t *testing.T) {
	tb := run(config{duration: 100 * time.Millisecond, runs: 1})
	for _, sc := range tb.scenarios {
		for _, s := range tb.systems {
			r := tb.cells[sc.name+"/"+s.name]
			switch {
			case r == nil:
				t.Errorf("%s/%s: got no result, want one", sc.name, s.name)
			case errors.Is(r.err, errNotBuilt):
				t.Logf("%s/%s: %v", sc.name, s.name, r.err)
			case r.err != nil:
				t.Errorf("%s/%s: got error %v, want none", sc.name, s.name, r.err)
			case r.latency && len(r.lat) == 0:
				t.Errorf("%s/%s: got no round trips, want some", sc.name, s.name)
			case !r.latency && r.recv == 0:
				t.Errorf("%s/%s: got 0 messages received, want some (sent %d)", sc.name, s.name, r.sent)
			}
		}
	}
	var b strings.Builder
	tb.write(&b)
	want := 0
	for _, sc := range tb.scenarios {
		for _, s := range tb.systems {
			if r := tb.cells[sc.name+"/"+s.name]; r != nil && !(s.partial && errors.Is(r.err, errNotBuilt)) {
				want++
			}
		}
	}
	if got := strings.Count(b.String(), "\n| ") - 1; got != want { // less the header
		t.Errorf("table: got %d rows, want %d\n%s", got, want, b.String())
	}
	t.Log("\n" + b.String())
}

func TestOnly(t *testing.T) {
	c := config{duration: 50 * time.Millisecond, runs: 1}
	c.only = mustCompile(t, "^pubsub-16B/(mangos|nats)$")
	tb := run(c)
	if len(tb.cells) != 2 {
		t.Fatalf("got %d cells, want 2: %v", len(tb.cells), tb.cells)
	}
}

func mustCompile(t *testing.T, s string) *regexp.Regexp {
	t.Helper()
	re, err := regexp.Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	return re
}

// BenchmarkPublish256 measures one spmesh Publish of 256 bytes with one
// subscriber connected over TCP loopback. allocs/op counts the whole
// process (the receiving side included), per published message.
func BenchmarkPublish256(b *testing.B) {
	st, err := spmeshPubSub(256, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer st.close()
	payload := make([]byte, 256)
	for st.counts[0].Load() == 0 {
		if err := st.send(payload); err != nil {
			b.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	b.ReportAllocs()
	b.SetBytes(256)
	b.ResetTimer()
	for range b.N {
		if err := st.send(payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublish256NoPeer is the publishing side alone: no subscriber,
// so mangos drops each message right after spmesh has encoded it.
func BenchmarkPublish256NoPeer(b *testing.B) {
	pub, err := pubsub.NewPublisher(pubsub.WithCodec(spmesh.Raw))
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	ctx := context.Background()
	var payload any = make([]byte, 256) // boxed once: what Publish itself allocates
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := pub.Publish(ctx, "bench", payload); err != nil {
			b.Fatal(err)
		}
	}
}

// TestObserver: the metrics rows' observer exports the sockets it is given
// through its registry, and its scraper stops when the closers run.
func TestObserver(t *testing.T) {
	obs, err := newObserver(true)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := pubsub.NewPublisher(pubsub.WithCodec(spmesh.Raw))
	if err != nil {
		t.Fatal(err)
	}
	var cs closers
	cs.add(pub.Close)
	if err := obs.add("publisher", pub); err != nil {
		t.Fatal(err)
	}
	obs.scrape(&cs)
	defer cs.close()
	fams, err := obs.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range fams {
		found = found || f.GetName() == "spmesh_messages_sent_total"
	}
	if !found {
		t.Fatalf("got %d metric families without spmesh_messages_sent_total, want it", len(fams))
	}
	if none, err := newObserver(false); none != nil || err != nil || none.add("x", pub) != nil {
		t.Fatalf("newObserver(false): got %v, %v, want a nil observer that adds nothing", none, err)
	}
}

// BenchmarkScrape measures one gather of the metrics rows' registry with
// the pub/sub 256 B row's sockets (a publisher and a subscriber, both
// connected): the scraper spends this every 100 ms.
func BenchmarkScrape(b *testing.B) {
	obs, err := newObserver(true)
	if err != nil {
		b.Fatal(err)
	}
	pub, err := pubsub.NewPublisher(pubsub.WithCodec(spmesh.Raw))
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	addr, err := pub.Listen(loopback)
	if err != nil {
		b.Fatal(err)
	}
	sub, err := pubsub.NewSubscriber(pubsub.WithCodec(spmesh.Raw), pubsub.WithSubscribe("bench"), pubsub.WithDial(addr))
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	if obs.add("publisher", pub) != nil || obs.add("subscriber-0", sub) != nil {
		b.Fatal("add")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := obs.reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
