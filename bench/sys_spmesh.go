package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/pipeline"
	"github.com/spmesh/spmesh/pubsub"
	"github.com/spmesh/spmesh/reqrep"
)

// spmesh over tcp:// (internal/sock maps it to the sptcp transport unless
// a socket asks for mangos' stock one), with the raw codec so that every
// system moves the same bytes.
func spmeshSystem() *system {
	return &system{
		name:     "spmesh",
		pubsub:   spmeshPubSub,
		pipeline: spmeshPipeline,
		reqrep:   spmeshReqRep,
		acked:    spmeshAcked,
		durable:  spmeshDurable,
		nomatch:  spmeshNomatch,
	}
}

const loopback = "tcp://127.0.0.1:0"

// closers closes what was opened, last first.
type closers []func() error

func (cs *closers) add(f func() error) { *cs = append(*cs, f) }

func (cs closers) close() {
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

func spmeshPubSub(size, subs int) (*stream, error) { return spmeshPubSubOver(plainNet, size, subs) }

// spmeshNet is how the spmesh system connects: an address to listen on and
// the options that go with it (TLS).
type spmeshNet struct {
	listen   string
	pub, sub []pubsub.Option
	rep, req []reqrep.Option
	metrics  bool // every socket on a metrics.Collector, scraped (sys_spmesh_metrics.go)
}

var plainNet = spmeshNet{listen: loopback}

func spmeshPubSubOver(nw spmeshNet, size, subs int) (*stream, error) {
	var cs closers
	obs, err := newObserver(nw.metrics)
	if err != nil {
		return nil, err
	}
	pub, err := pubsub.NewPublisher(append([]pubsub.Option{pubsub.WithCodec(spmesh.Raw)}, nw.pub...)...)
	if err != nil {
		return nil, err
	}
	cs.add(pub.Close)
	addr, err := pub.Listen(nw.listen)
	if err == nil {
		err = obs.add("publisher", pub)
	}
	if err != nil {
		cs.close()
		return nil, err
	}
	counts := counters(subs)
	for i := range subs {
		sub, err := pubsub.NewSubscriber(append([]pubsub.Option{pubsub.WithCodec(spmesh.Raw), pubsub.WithSubscribe("bench"), pubsub.WithDial(addr)}, nw.sub...)...)
		if err != nil {
			cs.close()
			return nil, err
		}
		cs.add(sub.Close)
		if err := obs.add(fmt.Sprintf("subscriber-%d", i), sub); err != nil {
			cs.close()
			return nil, err
		}
		go func() {
			for range sub.C() {
				counts[i].Add(1)
			}
		}()
	}
	obs.scrape(&cs)
	ctx := context.Background()
	return &stream{
		send:   func(b []byte) error { return pub.Publish(ctx, "bench", b) },
		counts: counts, fanout: true, close: cs.close,
	}, nil
}

func spmeshPipeline(size, workers int) (*stream, error) {
	var cs closers
	counts := counters(workers)
	opts := []pipeline.Option{pipeline.WithCodec(spmesh.Raw)}
	for i := range workers {
		pl, err := pipeline.NewPuller(pipeline.WithCodec(spmesh.Raw))
		if err != nil {
			cs.close()
			return nil, err
		}
		cs.add(pl.Close)
		addr, err := pl.Listen(loopback)
		if err != nil {
			cs.close()
			return nil, err
		}
		opts = append(opts, pipeline.WithDial(addr))
		go func() {
			for range pl.C() {
				counts[i].Add(1)
			}
		}()
	}
	push, err := pipeline.NewPusher(opts...)
	if err != nil {
		cs.close()
		return nil, err
	}
	cs.add(push.Close)
	ctx := context.Background()
	return &stream{
		send:   func(b []byte) error { return push.Push(ctx, b) },
		counts: counts, close: cs.close,
	}, nil
}

func spmeshReqRep(size int) (*rpc, error) { return spmeshReqRepOver(plainNet, size) }

func spmeshReqRepOver(nw spmeshNet, size int) (*rpc, error) {
	var cs closers
	obs, err := newObserver(nw.metrics)
	if err != nil {
		return nil, err
	}
	echo := reqrep.HandlerFunc(func(_ context.Context, r *reqrep.Request) (any, error) { return r.Data, nil })
	rep, err := reqrep.NewReplier(echo, append([]reqrep.Option{reqrep.WithCodec(spmesh.Raw)}, nw.rep...)...)
	if err != nil {
		return nil, err
	}
	cs.add(rep.Close)
	addr, err := rep.Listen(nw.listen)
	if err == nil {
		err = obs.add("replier", rep)
	}
	if err != nil {
		cs.close()
		return nil, err
	}
	req, err := reqrep.NewRequester(append([]reqrep.Option{reqrep.WithCodec(spmesh.Raw), reqrep.WithDial(addr), reqrep.WithWaitForReplier()}, nw.req...)...)
	if err != nil {
		cs.close()
		return nil, err
	}
	cs.add(req.Close)
	if err := obs.add("requester", req); err != nil {
		cs.close()
		return nil, err
	}
	obs.scrape(&cs)
	ctx := context.Background()
	var resp []byte
	return &rpc{
		call: func(b []byte) error {
			if err := req.Request(ctx, b, &resp); err != nil {
				return err
			}
			if len(resp) != len(b) {
				return errors.New("short reply")
			}
			return nil
		},
		close: cs.close,
	}, nil
}
