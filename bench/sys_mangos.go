package main

import (
	"errors"
	"strings"

	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/pub"
	"go.nanomsg.org/mangos/v3/protocol/pull"
	"go.nanomsg.org/mangos/v3/protocol/push"
	"go.nanomsg.org/mangos/v3/protocol/rep"
	"go.nanomsg.org/mangos/v3/protocol/req"
	"go.nanomsg.org/mangos/v3/protocol/sub"
	_ "go.nanomsg.org/mangos/v3/transport/tcp"

	// spmesh's batching transport, registered as sptcp://.
	_ "github.com/spmesh/spmesh/internal/sptcp"
)

// queueLen matches spmesh's default queue lengths, so raw mangos runs with
// the same buffering.
const queueLen = 1024

// ackWindow is how many jobs the raw mangos acked pipeline keeps in flight
// (REQ contexts), and ackWorkers how many each REP worker serves at once.
const (
	ackWindow  = 64
	ackWorkers = 16
)

// mangosSystem is raw mangos v3 sockets over the transport of scheme.
func mangosSystem(name, scheme string) *system {
	m := mangosSys{scheme: scheme}
	return &system{name: name, pubsub: m.pubsub, pipeline: m.pipeline, reqrep: m.reqrep, acked: m.acked, nomatch: m.nomatch}
}

type mangosSys struct{ scheme string }

func (m mangosSys) open(f func() (mangos.Socket, error), cs *closers) (mangos.Socket, error) {
	s, err := f()
	if err != nil {
		return nil, err
	}
	cs.add(s.Close)
	_ = s.SetOption(mangos.OptionWriteQLen, queueLen)
	_ = s.SetOption(mangos.OptionReadQLen, queueLen)
	return s, nil
}

func (m mangosSys) listen(s mangos.Socket) (string, error) {
	l, err := s.NewListener(m.scheme+"://127.0.0.1:0", nil)
	if err != nil {
		return "", err
	}
	if err := l.Listen(); err != nil {
		return "", err
	}
	a := l.Address()
	return m.scheme + a[strings.Index(a, "://"):], nil
}

// receive counts messages until s closes.
func receive(s mangos.Socket, n interface{ Add(uint64) uint64 }) {
	for {
		msg, err := s.RecvMsg()
		if err != nil {
			return
		}
		msg.Free()
		n.Add(1)
	}
}

func (m mangosSys) pubsub(size, subs int) (*stream, error) {
	st, _, err := m.pubsubAddr(size, subs)
	return st, err
}

// pubsubAddr is pubsub, and the publisher's address.
func (m mangosSys) pubsubAddr(size, subs int) (*stream, string, error) {
	var cs closers
	ps, err := m.open(pub.NewSocket, &cs)
	if err != nil {
		return nil, "", err
	}
	addr, err := m.listen(ps)
	if err != nil {
		cs.close()
		return nil, "", err
	}
	counts := counters(subs)
	for i := range subs {
		ss, err := m.open(sub.NewSocket, &cs)
		if err == nil {
			err = ss.SetOption(mangos.OptionSubscribe, []byte{})
		}
		if err == nil {
			err = ss.Dial(addr)
		}
		if err != nil {
			cs.close()
			return nil, "", err
		}
		go receive(ss, counts[i])
	}
	return &stream{send: ps.Send, counts: counts, fanout: true, close: cs.close}, addr, nil
}

func (m mangosSys) pipeline(size, workers int) (*stream, error) {
	var cs closers
	ps, err := m.open(push.NewSocket, &cs)
	if err != nil {
		return nil, err
	}
	counts := counters(workers)
	for i := range workers {
		pl, err := m.open(pull.NewSocket, &cs)
		if err != nil {
			cs.close()
			return nil, err
		}
		addr, err := m.listen(pl)
		if err == nil {
			err = ps.Dial(addr)
		}
		if err != nil {
			cs.close()
			return nil, err
		}
		go receive(pl, counts[i])
	}
	return &stream{send: ps.Send, counts: counts, close: cs.close}, nil
}

func (m mangosSys) reqrep(size int) (*rpc, error) {
	var cs closers
	rp, err := m.open(rep.NewSocket, &cs)
	if err != nil {
		return nil, err
	}
	addr, err := m.listen(rp)
	if err != nil {
		cs.close()
		return nil, err
	}
	go func() {
		for {
			msg, err := rp.RecvMsg()
			if err != nil || rp.SendMsg(msg) != nil {
				return
			}
		}
	}()
	rq, err := m.open(req.NewSocket, &cs)
	if err == nil {
		err = rq.Dial(addr)
	}
	if err != nil {
		cs.close()
		return nil, err
	}
	return &rpc{
		call: func(b []byte) error {
			if err := rq.Send(b); err != nil {
				return err
			}
			r, err := rq.RecvMsg()
			if err != nil {
				return err
			}
			n := len(r.Body)
			r.Free()
			if n != len(b) {
				return errors.New("short reply")
			}
			return nil
		},
		close: cs.close,
	}, nil
}

// acked is the at-least-once pipeline in raw mangos terms: REQ/REP where
// the reply is the ack, ackWindow jobs in flight over mangos contexts.
func (m mangosSys) acked(size, workers int) (*stream, error) {
	var cs closers
	rq, err := m.open(req.NewSocket, &cs)
	if err != nil {
		return nil, err
	}
	acks := counters(1) // counted where they arrive: at the producer
	for range workers {
		rp, err := m.open(rep.NewSocket, &cs)
		if err != nil {
			cs.close()
			return nil, err
		}
		addr, err := m.listen(rp)
		if err == nil {
			err = rq.Dial(addr)
		}
		if err != nil {
			cs.close()
			return nil, err
		}
		for range ackWorkers {
			c, err := rp.OpenContext()
			if err != nil {
				cs.close()
				return nil, err
			}
			go func() {
				for {
					msg, err := c.RecvMsg()
					if err != nil {
						return
					}
					msg.Body = msg.Body[:0] // the ack is empty
					if c.SendMsg(msg) != nil {
						return
					}
				}
			}()
		}
	}
	jobs := make(chan []byte)
	for range ackWindow {
		c, err := rq.OpenContext()
		if err != nil {
			cs.close()
			return nil, err
		}
		go func() {
			for b := range jobs {
				if c.Send(b) != nil {
					continue
				}
				if r, err := c.RecvMsg(); err == nil {
					r.Free()
					acks[0].Add(1)
				}
			}
		}()
	}
	cs.add(func() error { close(jobs); return nil })
	return &stream{
		send:   func(b []byte) error { jobs <- b; return nil },
		counts: acks, close: cs.close,
	}, nil
}
