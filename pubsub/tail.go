package pubsub

import (
	"time"

	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
)

// Tail frames: a publisher idle for p.tail after publishing on some topics
// sends each of them a tail frame (wire kind 10) holding the topic's last
// sequence number, queued in order after the messages it covers, so that a
// subscriber counts the messages it missed at the end of a burst.

// touched records a message accepted on ts. The caller holds p.mu.
func (p *Publisher) touched(ts *topicSeq) {
	p.count++
	if ts.dirty || p.tail == 0 {
		return
	}
	ts.dirty = true
	p.dirty = append(p.dirty, ts)
	if len(p.dirty) == 1 {
		select {
		case p.tailWake <- struct{}{}:
		default:
		}
	}
}

// tails waits for topics to be published on, then for the publisher to be
// idle for p.tail (no message accepted during a whole interval), then
// queues their tail frames.
func (p *Publisher) tails() {
	defer close(p.tailDone)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-p.tailStop:
			return
		case <-p.tailWake:
		}
		p.mu.Lock()
		count := p.count
		p.mu.Unlock()
		for idle := false; !idle; {
			t.Reset(p.tail)
			select {
			case <-p.tailStop:
				t.Stop()
				return
			case <-t.C:
			}
			p.mu.Lock()
			if idle = p.count == count; idle {
				p.queueTails()
			}
			count = p.count
			p.mu.Unlock()
		}
	}
}

// queueTails queues a tail frame for each topic published on since the
// last ones: after what is pending (batching), or sent at once. The
// caller holds p.mu.
func (p *Publisher) queueTails() {
	if p.closed || len(p.dirty) == 0 {
		return
	}
	now := time.Now().UnixNano()
	for i, ts := range p.dirty {
		ts.dirty = false
		p.dirty[i] = nil
		env := wire.Msg{Kind: wire.KindTail, Topic: ts.name, Time: now, Pub: p.id, Seq: ts.seq}
		m := sock.NewFrame(64 + len(ts.name))
		m.Body = wire.AppendHeader(m.Body[:0], &env)
		if !p.batching {
			p.pub.SendControl(m)
			continue
		}
		p.pend.ents = append(p.pend.ents, entry{topic: ts.name, end: len(p.pend.buf), seq: ts.seq, frame: m, ctl: true})
	}
	p.dirty = p.dirty[:0]
	if p.batching {
		p.wakeFlusher()
	}
}

// stopTails stops the tail goroutine and waits for it.
func (p *Publisher) stopTails() {
	p.tailOnce.Do(func() { close(p.tailStop) })
	<-p.tailDone
}
