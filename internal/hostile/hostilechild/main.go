// Command hostilechild runs one case of spmesh's hostile-peer suite in a
// process of its own, under the address-space cap its parent test sets (see
// internal/hostile.RunChild): the cases that once made the process allocate
// tens of GiB or overflow its stack. Each case starts an spmesh socket,
// attacks it over real TCP from the same process, and prints one line per
// attack:
//
//	BEGIN <attack>
//	OK <attack> sent=<bytes> alloc=<bytes> outcome=<what the target did>
//
// then "LEGIT ok" once a legit peer was still served, and exits 0. A
// regression shows as a missing OK line and a non-zero exit (the runtime's
// "out of memory" or "stack overflow"), or as a FAIL line.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/hostile"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/pipeline"
	"github.com/spmesh/spmesh/pubsub"
	"github.com/spmesh/spmesh/reqrep"
	"github.com/spmesh/spmesh/survey"
)

// maxMsg lets the 10 M nesting body (10 MB) through the size limit, so
// that the decoder, not the transport, meets it.
const maxMsg = 32 << 20

// Nest is how deep the nesting attack goes.
const Nest = 10_000_000

var out = bufio.NewWriter(os.Stdout)

func say(format string, args ...any) {
	fmt.Fprintf(out, format+"\n", args...)
	out.Flush()
}

func fail(format string, args ...any) {
	say("FAIL "+format, args...)
	os.Exit(1)
}

// item is the struct of the []struct case.
type item struct {
	A int64
	B string
	C []byte
	D map[string]any
}

func main() {
	if err := hostile.ApplyLimit(); err != nil {
		fail("rlimit: %v", err)
	}
	// A regression into unbounded recursion fails at 256 MiB of stack,
	// not at the runtime's 1 GB default.
	debug.SetMaxStack(256 << 20)
	if len(os.Args) != 2 {
		fail("usage: hostilechild <case>")
	}
	cases := map[string]func(){
		"replier": replier, "worker": worker, "respondent": respondent, "subscriber": subscriber,
		"header-replier": headerReplier, "header-subscriber": headerSubscriber, "batch": batch,
		"cycle-publish": cyclePublish, "cycle-request": cycleRequest, "cycle-push": cyclePush,
		"cycle-produce": cycleProduce, "cycle-survey": cycleSurvey,
	}
	f, ok := cases[os.Args[1]]
	if !ok {
		fail("unknown case %q", os.Args[1])
	}
	f()
	say("DONE")
}

// attacks are the hostile bodies, the 10 M nesting last.
func attacks() []hostile.Body {
	return append(hostile.Bodies(), hostile.Body{Name: "nest10M", B: hostile.Nesting(Nest)})
}

// types are the decode targets: one typed handler per type.
var types = []string{"any", "map", "structs", "int64s", "bytes"}

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 20*time.Second)
}

// measure runs attack and prints its line: what it sent, what the process
// allocated meanwhile, and its outcome.
func measure(name string, attack func() (sent int64, outcome string)) {
	measureBudget(name, 0, attack)
}

// measureBudget is measure for an attack whose allocation is bounded by
// budget bytes rather than by what it sent (a local send of a hostile
// value): the line reports budget as sent when it is larger.
func measureBudget(name string, budget int64, attack func() (sent int64, outcome string)) {
	say("BEGIN %s", name)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	sent, outcome := attack()
	sent = max(sent, budget)
	runtime.ReadMemStats(&ms)
	say("OK %s sent=%d alloc=%d outcome=%s", name, sent, ms.TotalAlloc-before, oneLine(outcome))
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 160 {
		s = s[:160]
	}
	return s
}

func must[T any](v T, err error) T {
	if err != nil {
		fail("%v", err)
	}
	return v
}

// call sends one frame (sp header hdr, then env) on c and returns the
// envelope of the answer.
func call(c *hostile.Conn, hdr, env []byte) (int64, string) {
	before := c.Sent()
	if err := c.Frame(hdr, env); err != nil {
		fail("send: %v", err)
	}
	b, err := c.ReadFrame(20*time.Second, maxMsg)
	if err != nil {
		fail("no answer: %v", err)
	}
	if len(b) < 4 {
		fail("answer of %d bytes", len(b))
	}
	var m wire.Msg
	if err := wire.Decode(b[4:], &m); err != nil {
		fail("answer: %v", err)
	}
	if m.Err == "" {
		return c.Sent() - before, "answered without error"
	}
	return c.Sent() - before, "error reply: " + m.Err
}

// expectErr fails unless the outcome is an error answer.
func expectErr(name, outcome string) {
	if !strings.HasPrefix(outcome, "error reply") && !strings.HasPrefix(outcome, "decode error") {
		fail("%s: got %q, want an error", name, outcome)
	}
}

func decodeAs(typ string, dec func(any) error) error {
	switch typ {
	case "any":
		var v any
		return dec(&v)
	case "map":
		var v map[string]any
		return dec(&v)
	case "structs":
		var v []item
		return dec(&v)
	case "int64s":
		var v []int64
		return dec(&v)
	case "bytes":
		var v []byte
		return dec(&v)
	}
	panic(typ)
}

// reqHandler returns a typed replier handler for typ.
func reqHandler(typ string) reqrep.Handler {
	ok := func(context.Context, *reqrep.Request, any) (string, error) { return "ok", nil }
	switch typ {
	case "any":
		return reqrep.TypedHandler(func(c context.Context, r *reqrep.Request, v any) (string, error) { return ok(c, r, v) })
	case "map":
		return reqrep.TypedHandler(func(c context.Context, r *reqrep.Request, v map[string]any) (string, error) { return ok(c, r, v) })
	case "structs":
		return reqrep.TypedHandler(func(c context.Context, r *reqrep.Request, v []item) (string, error) { return ok(c, r, v) })
	case "int64s":
		return reqrep.TypedHandler(func(c context.Context, r *reqrep.Request, v []int64) (string, error) { return ok(c, r, v) })
	case "bytes":
		return reqrep.TypedHandler(func(c context.Context, r *reqrep.Request, v []byte) (string, error) { return ok(c, r, v) })
	}
	panic(typ)
}

func legitRequest(addr string, v any) {
	rq := must(reqrep.NewRequester(reqrep.WithDial(addr), reqrep.WithMaxMessageSize(maxMsg), reqrep.WithWaitForReplier()))
	defer rq.Close()
	c, cancel := ctx()
	defer cancel()
	var got string
	if err := rq.Request(c, v, &got); err != nil || got != "ok" {
		fail("legit request: got %q, %v, want ok", got, err)
	}
	say("LEGIT ok")
}

// attackServer sends every attack, as a kind frame, to the server (a
// replier or a worker) at addr over one connection, and expects an error
// answer to each; name prefixes the cases' names.
func attackServer(name, addr string, kind wire.Kind) {
	c := must(hostile.Dial(addr, hostile.ProtoReq))
	defer c.Close()
	for i, a := range attacks() {
		name := name + "/" + a.Name
		measure(name, func() (int64, string) {
			sent, outcome := call(c, hostile.ReqID(uint32(i)), hostile.Envelope(kind, "", a.B))
			expectErr(name, outcome)
			return sent, outcome
		})
	}
}

func replier() {
	for _, typ := range types {
		rp := must(reqrep.NewReplier(reqHandler(typ), reqrep.WithListen("tcp://127.0.0.1:0"), reqrep.WithMaxMessageSize(maxMsg)))
		attackServer("replier/"+typ, rp.Addrs()[0], wire.KindRequest)
		legitRequest(rp.Addrs()[0], legitValue(typ))
		rp.Close()
	}
}

// legitValue is a valid value of the case's type.
func legitValue(typ string) any {
	switch typ {
	case "map":
		return map[string]any{"k": 1}
	case "structs":
		return []item{{A: 1, B: "b"}}
	case "int64s":
		return []int64{1, 2}
	case "bytes":
		return []byte("abc")
	}
	return "any"
}

func jobHandler(typ string) pipeline.Handler {
	switch typ {
	case "any":
		return pipeline.TypedHandler(func(context.Context, *pipeline.Job, any) error { return nil })
	case "map":
		return pipeline.TypedHandler(func(context.Context, *pipeline.Job, map[string]any) error { return nil })
	case "structs":
		return pipeline.TypedHandler(func(context.Context, *pipeline.Job, []item) error { return nil })
	case "int64s":
		return pipeline.TypedHandler(func(context.Context, *pipeline.Job, []int64) error { return nil })
	case "bytes":
		return pipeline.TypedHandler(func(context.Context, *pipeline.Job, []byte) error { return nil })
	}
	panic(typ)
}

func worker() {
	for _, typ := range types {
		w := must(pipeline.NewWorker(jobHandler(typ), pipeline.WithListen("tcp://127.0.0.1:0"), pipeline.WithMaxMessageSize(maxMsg)))
		attackServer("worker/"+typ, w.Addrs()[0], wire.KindJob)
		p := must(pipeline.NewProducer(pipeline.WithDial(w.Addrs()[0]), pipeline.WithMaxMessageSize(maxMsg), pipeline.WithWaitForWorker()))
		cx, cancel := ctx()
		if err := p.Produce(cx, legitValue(typ)); err != nil {
			fail("legit job: %v", err)
		}
		cancel()
		say("LEGIT ok")
		p.Close()
		w.Close()
	}
}

func surveyHandler(typ string) survey.Handler {
	ok := func() (string, error) { return "ok", nil }
	switch typ {
	case "any":
		return survey.TypedHandler(func(context.Context, *survey.Question, any) (string, error) { return ok() })
	case "map":
		return survey.TypedHandler(func(context.Context, *survey.Question, map[string]any) (string, error) { return ok() })
	case "structs":
		return survey.TypedHandler(func(context.Context, *survey.Question, []item) (string, error) { return ok() })
	case "int64s":
		return survey.TypedHandler(func(context.Context, *survey.Question, []int64) (string, error) { return ok() })
	case "bytes":
		return survey.TypedHandler(func(context.Context, *survey.Question, []byte) (string, error) { return ok() })
	}
	panic(typ)
}

func respondent() {
	for _, typ := range types {
		l := must(hostile.Listen(hostile.ProtoSurveyor))
		r := must(survey.NewRespondent(surveyHandler(typ), survey.WithDial(l.Addr()), survey.WithMaxMessageSize(maxMsg)))
		c := must(l.Accept(20 * time.Second))
		for i, a := range attacks() {
			name := "respondent/" + typ + "/" + a.Name
			measure(name, func() (int64, string) {
				sent, outcome := call(c, hostile.ReqID(uint32(i)), hostile.Envelope(wire.KindSurvey, "", a.B))
				expectErr(name, outcome)
				return sent, outcome
			})
		}
		// Still served: a valid survey gets its answer.
		if _, outcome := call(c, hostile.ReqID(999), hostile.Envelope(wire.KindSurvey, "", must(spmesh.Msgpack.Marshal(legitValue(typ))))); outcome != "answered without error" {
			fail("legit survey: %s", outcome)
		}
		say("LEGIT ok")
		c.Close()
		l.Close()
		r.Close()
	}
}

func subscriber() {
	l := must(hostile.Listen(hostile.ProtoPub))
	defer l.Close()
	s := must(pubsub.NewSubscriber(pubsub.WithDial(l.Addr()), pubsub.WithSubscribe("t"), pubsub.WithMaxMessageSize(maxMsg)))
	defer s.Close()
	c := must(l.Accept(20 * time.Second))
	defer c.Close()
	for _, a := range attacks() {
		name := "subscriber/" + a.Name
		measure(name, func() (int64, string) {
			before := c.Sent()
			if err := c.Frame(hostile.Envelope(wire.KindPublish, "t", a.B)); err != nil {
				fail("send: %v", err)
			}
			cx, cancel := ctx()
			defer cancel()
			m, err := s.Next(cx)
			if err != nil {
				fail("%s: subscriber: %v", name, err)
			}
			var outs []string
			for _, typ := range types {
				err := decodeAs(typ, m.Decode)
				if err == nil {
					fail("%s into %s: decoded without error", name, typ)
				}
				outs = append(outs, typ+": "+err.Error())
			}
			return c.Sent() - before, "decode error " + strings.Join(outs, "; ")
		})
	}
	legitPublish(c, s)
}

// legitPublish sends a valid message from the raw publisher and checks the
// subscriber delivers it next, decoding it.
func legitPublish(c *hostile.Conn, s *pubsub.Subscriber) {
	if err := c.Frame(hostile.Envelope(wire.KindPublish, "t", must(spmesh.Msgpack.Marshal("legit")))); err != nil {
		fail("send: %v", err)
	}
	cx, cancel := ctx()
	defer cancel()
	m, err := s.Next(cx)
	if err != nil {
		fail("legit message: %v", err)
	}
	if v, err := spmesh.Decode[string](m); err != nil || v != "legit" {
		fail("legit message: got %q, %v, want legit (a phantom message?)", v, err)
	}
	say("LEGIT ok")
}

// frameSize is the size of the header-claim frames: just under the
// default 8 MiB limit.
const frameSize = 8<<20 - 64

func headerReplier() {
	rp := must(reqrep.NewReplier(reqHandler("any"), reqrep.WithListen("tcp://127.0.0.1:0")))
	defer rp.Close()
	c := must(hostile.Dial(rp.Addrs()[0], hostile.ProtoReq))
	defer c.Close()
	measure("header-replier/map32-claim-8MiB", func() (int64, string) {
		sent, outcome := call(c, hostile.ReqID(1), hostile.HeaderClaim(wire.KindRequest, "", frameSize))
		expectErr("header-replier", outcome)
		return sent, outcome
	})
	legitRequest(rp.Addrs()[0], "x")
}

func headerSubscriber() {
	l := must(hostile.Listen(hostile.ProtoPub))
	defer l.Close()
	s := must(pubsub.NewSubscriber(pubsub.WithDial(l.Addr()), pubsub.WithSubscribe("t")))
	defer s.Close()
	c := must(l.Accept(20 * time.Second))
	defer c.Close()
	measure("header-subscriber/map32-claim-8MiB", func() (int64, string) {
		before := c.Sent()
		if err := c.Frame(hostile.HeaderClaim(wire.KindPublish, "t", frameSize)); err != nil {
			fail("send: %v", err)
		}
		waitDecodeErrors(s, 1)
		return c.Sent() - before, "decode error counted"
	})
	legitPublish(c, s)
}

func waitDecodeErrors(s *pubsub.Subscriber, n uint64) {
	deadline := time.Now().Add(20 * time.Second)
	for s.Stats().DecodeErrors < n {
		if time.Now().After(deadline) {
			fail("decode errors: got %d, want %d", s.Stats().DecodeErrors, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func batch() {
	l := must(hostile.Listen(hostile.ProtoPub))
	defer l.Close()
	s := must(pubsub.NewSubscriber(pubsub.WithDial(l.Addr()), pubsub.WithSubscribe("t")))
	defer s.Close()
	c := must(l.Accept(20 * time.Second))
	defer c.Close()
	frames := []hostile.Body{
		{Name: "empty-entries-8MiB", B: hostile.BatchClaim("t", frameSize/2)},
		{Name: "bin32-entry", B: hostile.BatchBinClaim("t")},
	}
	for i, f := range frames {
		measure("batch/"+f.Name, func() (int64, string) {
			before := c.Sent()
			if err := c.Frame(f.B); err != nil {
				fail("send: %v", err)
			}
			waitDecodeErrors(s, uint64(i+1))
			return c.Sent() - before, "decode error counted"
		})
	}
	// No phantom message: the next one delivered is the legit one.
	legitPublish(c, s)
	if st := s.Stats(); st.Received != 1 {
		fail("received %d messages, want only the legit one", st.Received)
	}
}

// node is a value with a pointer cycle.
type node struct {
	N    int
	Next *node
}

func cycle() *node {
	n := &node{N: 1}
	n.Next = n
	return n
}

// cycleOutcome runs send of a cyclic value: it must return an error, not
// end the process.
func cycleOutcome(name string, send func(context.Context, any) error) {
	measureBudget(name, cycleBudget, func() (int64, string) {
		cx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := send(cx, cycle())
		if err == nil {
			fail("%s: a cyclic value was sent without error", name)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			fail("%s: got %v, want an encoding error", name, err)
		}
		return 0, "error: " + err.Error()
	})
}

// cycleBudget is what encoding a cyclic value may allocate before it
// fails, counted as bytes "sent" against the bound: the default message
// size limit (8 MiB), at which an encoder stops at the latest.
const cycleBudget = 8 << 20

func cyclePublish() {
	p := must(pubsub.NewPublisher(pubsub.WithListen("tcp://127.0.0.1:0")))
	defer p.Close()
	cycleOutcome("cycle/publish", func(c context.Context, v any) error { return p.Publish(c, "t", v) })
}

func cycleRequest() {
	rp := must(reqrep.NewReplier(reqHandler("any"), reqrep.WithListen("tcp://127.0.0.1:0")))
	defer rp.Close()
	rq := must(reqrep.NewRequester(reqrep.WithDial(rp.Addrs()[0]), reqrep.WithWaitForReplier()))
	defer rq.Close()
	cycleOutcome("cycle/request", func(c context.Context, v any) error { return rq.Request(c, v, nil) })
	legitRequest(rp.Addrs()[0], "x")
}

func cyclePush() {
	pl := must(pipeline.NewPuller())
	defer pl.Close()
	addr := must(pl.Listen("tcp://127.0.0.1:0"))
	p := must(pipeline.NewPusher(pipeline.WithDial(addr)))
	defer p.Close()
	cycleOutcome("cycle/push", func(c context.Context, v any) error { return p.Push(c, v) })
}

func cycleProduce() {
	w := must(pipeline.NewWorker(jobHandler("any"), pipeline.WithListen("tcp://127.0.0.1:0")))
	defer w.Close()
	p := must(pipeline.NewProducer(pipeline.WithDial(w.Addrs()[0]), pipeline.WithWaitForWorker()))
	defer p.Close()
	cycleOutcome("cycle/produce", func(c context.Context, v any) error { return p.Produce(c, v) })
}

func cycleSurvey() {
	s := must(survey.NewSurveyor(survey.WithListen("tcp://127.0.0.1:0")))
	defer s.Close()
	r := must(survey.NewRespondent(surveyHandler("any"), survey.WithDial(s.Addrs()[0])))
	defer r.Close()
	cycleOutcome("cycle/survey", func(c context.Context, v any) error {
		rs, err := s.Survey(c, v)
		if err == nil {
			rs.Close()
		}
		return err
	})
}
