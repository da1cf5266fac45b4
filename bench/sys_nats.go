package main

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsSystem is an embedded nats-server with nats.go clients, each client
// on its own connection (client -> server -> client, as deployed).
func natsSystem() *system {
	return &system{name: "nats", pubsub: natsPubSub, pipeline: natsPipeline, reqrep: natsReqRep, acked: natsAcked, nomatch: natsNomatch,
		durable: func(size, workers int) (*stream, error) { return natsAckedWith(jsFile, durableWindow, workers) }}
}

// natsDurableSystem is JetStream in the durable row only, with the given
// storage.
func natsDurableSystem(name string, st jsStorage) *system {
	return &system{name: name, partial: true,
		durable: func(size, workers int) (*stream, error) { return natsAckedWith(st, durableWindow, workers) }}
}

// jsStorage is how the JetStream stream of the acked rows keeps messages.
type jsStorage int

const (
	jsMemory    jsStorage = iota
	jsFile                // file storage, the server's default sync: written to the OS at once, fsynced every 2 min
	jsFileFsync           // file storage with sync_always: fsynced on every write
)

// natsEnv is one server and the connections made to it.
type natsEnv struct {
	srv   *server.Server
	dir   string
	conns []*nats.Conn
}

func startNATS(js bool) (*natsEnv, error) { return startNATSWith(js, false) }

// startNATSWith starts a server; syncAlways fsyncs JetStream's file store
// on every write (the server's sync_always), else every 2 minutes (its
// default).
func startNATSWith(js, syncAlways bool) (*natsEnv, error) {
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true, SyncAlways: syncAlways}
	e := &natsEnv{}
	if js {
		dir, err := os.MkdirTemp("", "spmesh-bench-js-")
		if err != nil {
			return nil, err
		}
		e.dir = dir
		opts.JetStream, opts.StoreDir = true, dir
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		e.close()
		return nil, err
	}
	e.srv = srv
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		e.close()
		return nil, errors.New("nats-server not ready")
	}
	return e, nil
}

func (e *natsEnv) connect() (*nats.Conn, error) {
	nc, err := nats.Connect(e.srv.ClientURL(),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}), // slow consumer drops are counted, not logged
	)
	if err != nil {
		return nil, err
	}
	e.conns = append(e.conns, nc)
	return nc, nil
}

func (e *natsEnv) close() {
	for _, nc := range e.conns {
		nc.Close()
	}
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	}
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// receivers subscribes n connections to subject (in queue group q when not
// empty) and counts what each receives.
func (e *natsEnv) receivers(n int, subject, q string) ([]*atomic.Uint64, error) {
	counts := counters(n)
	for i := range n {
		nc, err := e.connect()
		if err != nil {
			return nil, err
		}
		h := func(*nats.Msg) { counts[i].Add(1) }
		if q == "" {
			_, err = nc.Subscribe(subject, h)
		} else {
			_, err = nc.QueueSubscribe(subject, q, h)
		}
		if err == nil {
			err = nc.Flush() // the server has the subscription
		}
		if err != nil {
			return nil, err
		}
	}
	return counts, nil
}

func natsStream(size, n int, q string) (*stream, error) {
	e, err := startNATS(false)
	if err != nil {
		return nil, err
	}
	counts, err := e.receivers(n, "bench", q)
	if err != nil {
		e.close()
		return nil, err
	}
	pc, err := e.connect()
	if err != nil {
		e.close()
		return nil, err
	}
	return &stream{
		send:   func(b []byte) error { return pc.Publish("bench", b) },
		counts: counts, fanout: q == "", close: e.close,
	}, nil
}

func natsPubSub(size, subs int) (*stream, error) { return natsStream(size, subs, "") }

// natsPipeline load-balances over a queue group.
func natsPipeline(size, workers int) (*stream, error) { return natsStream(size, workers, "workers") }

func natsReqRep(size int) (*rpc, error) {
	e, err := startNATS(false)
	if err != nil {
		return nil, err
	}
	rc, err := e.connect()
	if err == nil {
		_, err = rc.Subscribe("svc", func(m *nats.Msg) { m.Respond(m.Data) })
	}
	if err == nil {
		err = rc.Flush()
	}
	if err != nil {
		e.close()
		return nil, err
	}
	qc, err := e.connect()
	if err != nil {
		e.close()
		return nil, err
	}
	return &rpc{
		call: func(b []byte) error {
			r, err := qc.Request("svc", b, 10*time.Second)
			if err != nil {
				return err
			}
			if len(r.Data) != len(b) {
				return errors.New("short reply")
			}
			return nil
		},
		close: e.close,
	}, nil
}

// natsAcked is JetStream's at-least-once work queue: a memory stream with
// work-queue retention, publishes acknowledged by the server (async, a
// window of pending acks), pull consumers acking every message explicitly.
// Counted: messages acked by the workers.
func natsAcked(size, workers int) (*stream, error) { return natsAckedWith(jsMemory, 1, workers) }

// natsAckedWith is natsAcked with the stream's storage st, published to
// by senders goroutines at once.
func natsAckedWith(st jsStorage, senders, workers int) (*stream, error) {
	e, err := startNATSWith(true, st == jsFileFsync)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*stream, error) {
		e.close()
		return nil, err
	}
	ctx := context.Background()
	storage := jetstream.FileStorage
	if st == jsMemory {
		storage = jetstream.MemoryStorage
	}
	pc, err := e.connect()
	if err != nil {
		return fail(err)
	}
	js, err := jetstream.New(pc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return fail(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "JOBS", Subjects: []string{"jobs"},
		Retention: jetstream.WorkQueuePolicy, Storage: storage,
	}); err != nil {
		return fail(err)
	}
	stall := jetstream.WithStallWait(10 * time.Second)
	counts := counters(workers)
	var ccs []jetstream.ConsumeContext
	for i := range workers {
		wc, err := e.connect()
		if err != nil {
			return fail(err)
		}
		wjs, err := jetstream.New(wc)
		if err != nil {
			return fail(err)
		}
		cons, err := wjs.CreateOrUpdateConsumer(ctx, "JOBS", jetstream.ConsumerConfig{
			Durable: "workers", AckPolicy: jetstream.AckExplicitPolicy,
		})
		if err != nil {
			return fail(err)
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			if m.Ack() == nil {
				counts[i].Add(1)
			}
		})
		if err != nil {
			return fail(err)
		}
		ccs = append(ccs, cc)
	}
	return &stream{
		send: func(b []byte) error {
			for {
				// A full window of unacked publishes is backpressure: wait.
				_, err := js.PublishAsync("jobs", b, stall)
				if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
					return err
				}
			}
		},
		senders: senders,
		counts:  counts,
		close: func() {
			for _, cc := range ccs {
				cc.Stop()
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(5 * time.Second):
			}
			e.close()
		},
	}, nil
}
