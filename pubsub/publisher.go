package pubsub

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
)

// Batching limits (see the package doc).
const (
	// maxBatchMsgs bounds the messages in one batch frame.
	maxBatchMsgs = 256
	// maxPendingBytes and maxPendingMsgs bound what Publish accepts ahead
	// of the flusher; past them Publish waits for the flusher to take it.
	maxPendingBytes = 256 << 10
	maxPendingMsgs  = 4096
	// keepPending is the largest pending buffer kept after a flush (a
	// large message's buffer is dropped).
	keepPending = 1 << 20
)

// Publisher sends messages on topics to every connected [Subscriber]. It
// does not block on a slow subscriber beyond one short wait per shedding
// episode ([WithShedWait], 5 ms): that subscriber's messages are dropped
// and the subscriber sees the gap (with [WithBackpressure] it waits for the
// subscriber instead). A Publisher is safe for concurrent use.
type Publisher struct {
	so       *sock.Socket
	pub      *sock.Fanout // so's fan-out: counts what each subscriber's queue drops
	id       uint64
	codec    spmesh.Codec
	batching bool
	bare     bool // WithBareFrames: topic + body frames, no envelope (bare.go)
	maxFrame int  // largest batch frame this side allows (the subscribers' bound is pub.BatchLimit)

	mu        sync.Mutex // orders sequence numbers with sends
	closed    bool
	draining  bool                 // Drain was called: Publish refuses
	flushed   chan struct{}        // closed when the flusher is idle with nothing pending (Drain waits)
	bareCalls sock.Pending         // bare Publish calls in progress (Drain waits)
	topics    map[string]*topicSeq // validated topics and their counters
	lastTopic string               // the previous Publish's topic
	last      *topicSeq            // and its counter

	// Batching: Publish appends to pend; the flusher takes it.
	pend    pending
	idle    bool          // the flusher waits on wake
	wake    chan struct{} // capacity 1: one token when idle turns false
	waiters int           // Publish calls waiting for room
	room    chan struct{} // closed when the flusher takes pend, if waiters > 0
	done    chan struct{} // closed when the flusher has returned

	// Tail frames (tail.go): the topics published on since the last ones.
	tail     time.Duration // 0: none
	count    uint64        // messages accepted, to tell idleness
	dirty    []*topicSeq
	tailWake chan struct{} // capacity 1: dirty became non-empty
	tailStop chan struct{} // closed by Close
	tailOnce sync.Once
	tailDone chan struct{} // closed when the tail goroutine has returned
}

type topicSeq struct {
	seq   uint64
	name  string
	dirty bool // in Publisher.dirty
}

// pending is what Publish accepted and the flusher has not sent: entry
// contents (wire.AppendEntryHead and the body) back to back in buf.
type pending struct {
	buf   []byte
	ents  []entry
	large int // bytes held in entries' frames
}

type entry struct {
	topic string
	end   int // the content is buf[previous end:end]
	seq   uint64
	id    wire.ID
	frame *sock.Frame // a large message's own frame, ready to send
	ctl   bool        // frame is a tail frame (no message)
}

func (pd *pending) full() bool {
	return len(pd.buf)+pd.large >= maxPendingBytes || len(pd.ents) >= maxPendingMsgs
}

// NewPublisher opens a publisher. Give it addresses with [WithListen] or
// [WithDial] (or call [Publisher.Listen] and [Publisher.Dial] later), or a
// registry with [WithDiscovery].
func NewPublisher(opts ...Option) (*Publisher, error) {
	c, err := newConfig(forPublisher, opts)
	if err != nil {
		return nil, err
	}
	so, err := sock.Open(sock.Pub, c.sock, sock.Wiring{Bind: spmesh.RolePublisher, Bare: c.bare})
	if err != nil {
		return nil, err
	}
	p := &Publisher{
		so: so, pub: sock.PubOf(so), id: sock.RandomUint64(), codec: c.sock.Codec,
		batching: !c.noBatch && !c.bare, bare: c.bare, maxFrame: min(sock.MaxBatchFrame, c.sock.MaxMsgSize),
		topics: map[string]*topicSeq{},
		wake:   make(chan struct{}, 1),
		room:   make(chan struct{}),
		done:   make(chan struct{}),

		tail:     c.tail,
		tailWake: make(chan struct{}, 1),
		tailStop: make(chan struct{}),
		tailDone: make(chan struct{}),
	}
	if c.hold > 0 {
		p.pub.Hold(c.hold)
	}
	if c.shedSet {
		p.pub.ShedWait(c.shedWait)
	}
	if c.slow != nil {
		f := c.slow
		p.pub.OnSlow(func(addr string, dropped, since uint64) {
			f(SlowSubscriber{Addr: addr, Dropped: dropped, Since: since})
		}, slowEvery)
	}
	if p.bare {
		p.tail = 0 // no tail frames: no sequence numbers
	}
	if p.tail > 0 {
		go p.tails()
	} else {
		close(p.tailDone)
	}
	if p.batching {
		go p.flusher()
	} else {
		close(p.done)
	}
	return p, nil
}

// ID is the publisher's random id, as subscribers see it in [Message.Publisher].
func (p *Publisher) ID() uint64 { return p.id }

// Listen listens on addr and returns the bound address (port 0 resolved).
func (p *Publisher) Listen(addr string) (string, error) { return p.so.Listen(addr) }

// Dial connects to a subscriber listening at addr, in the background.
func (p *Publisher) Dial(addr string) error { return p.so.Dial(addr) }

// Publish encodes v with the codec and sends it on topic. Topics are
// dot-separated tokens without wildcards, e.g. "images.ready".
func (p *Publisher) Publish(ctx context.Context, topic string, v any) error {
	return p.PublishHeader(ctx, topic, nil, v)
}

// PublishHeader is [Publisher.Publish] with headers that travel with the
// message ([Message.Header]). A bare Publisher ([WithBareFrames]) carries
// none: non-empty headers fail with an error wrapping
// [spmesh.ErrInvalidOption].
func (p *Publisher) PublishHeader(ctx context.Context, topic string, h spmesh.Header, v any) error {
	return p.publish(ctx, topic, h, v, nil, false)
}

// PublishBytes sends data as the message body, as is, without the codec:
// data is already encoded in the subscribers' codec (or is the payload
// itself with [spmesh.Raw]). h may be nil. It spares the allocation that
// passing a []byte as an any costs, and Publish's codec call.
func (p *Publisher) PublishBytes(ctx context.Context, topic string, h spmesh.Header, data []byte) error {
	return p.publish(ctx, topic, h, nil, data, true)
}

// publish sends v encoded by the codec, or data as is when raw.
func (p *Publisher) publish(ctx context.Context, topic string, h spmesh.Header, v any, data []byte, raw bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.bare {
		return p.publishBare(topic, h, v, data, raw)
	}
	if p.so.Settings.Traced() {
		// One producer span, ended once the message is queued.
		tctx, th, end := p.so.Settings.TraceSend(ctx, spmesh.TracePublish, topic, h)
		err := p.publishEnv(tctx, topic, th, v, data, raw)
		end(err)
		return err
	}
	return p.publishEnv(ctx, topic, h, v, data, raw)
}

// alone returns the size from which a []byte or string body is encoded
// straight into its own plain frame at Publish, sparing a copy: half the
// batch frame the subscribers take (at least half of the legacy bound), so
// that a batch could not hold two such messages anyway.
func (p *Publisher) alone() int {
	return max(sock.LegacyBatchFrame, min(p.maxFrame, p.pub.BatchLimit())) / 2
}

// publishEnv publishes in an envelope, in a batch or alone.
func (p *Publisher) publishEnv(ctx context.Context, topic string, h spmesh.Header, v any, data []byte, raw bool) error {
	p.mu.Lock()
	ts, err := p.topic(topic)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	codec := p.codec
	if raw {
		codec = spmesh.Raw
	}
	if p.pub.Shedding() && p.shedEarly(ts, topic, h, codec, v, data, raw) {
		p.mu.Unlock()
		return nil
	}
	if !p.batching {
		if raw {
			v = data // boxed only here and for a large body
		}
		return p.sendNow(ts, topic, h, codec, v) // unlocks
	}
	for p.pend.full() && !p.closed && !p.draining {
		if err := p.waitRoom(ctx); err != nil {
			return err // unlocked
		}
	}
	if p.closed {
		p.mu.Unlock()
		return spmesh.ErrClosed
	}
	if p.draining {
		p.mu.Unlock()
		return errDraining
	}
	lone := p.alone()
	if raw && len(data) >= lone {
		return p.appendLarge(ts, topic, h, codec, data) // unlocks
	}
	if !raw && sock.BodyLen(v) >= lone {
		return p.appendLarge(ts, topic, h, codec, v) // unlocks
	}
	off := len(p.pend.buf)
	b := wire.AppendEntryHead(p.pend.buf, h)
	if raw {
		b = append(b, data...)
	} else if b, err = spmesh.AppendMarshalLimit(codec, b, v, off+p.so.Settings.MaxMsgSize); err != nil {
		p.pend.buf = b[:off]
		p.mu.Unlock()
		if errors.Is(err, spmesh.ErrTooLarge) {
			p.so.C.TooLarge.Add(1)
			return err
		}
		return fmt.Errorf("spmesh: encode %T: %w", v, err)
	}
	if n := len(b) - off + wire.PublishOverhead(topic); n > p.so.Settings.MaxMsgSize {
		p.pend.buf = b[:off]
		p.mu.Unlock()
		return p.so.CheckSize(n) // counted
	}
	if p.pub.Shedding() && p.pub.Shed(topic, 1) {
		// Encoded (to check its size) but not worth sending.
		p.pend.buf = b[:off]
		p.shed(ts)
		p.mu.Unlock()
		return nil
	}
	ts.seq++
	p.touched(ts)
	p.pend.buf = b
	p.pend.ents = append(p.pend.ents, entry{topic: topic, end: len(b), seq: ts.seq, id: p.so.NewID()})
	p.wakeFlusher()
	p.mu.Unlock()
	return nil
}

// shedEarly drops a message before encoding it when every subscriber
// connection that wants topic sheds (sock.Fanout.Shed: its queue filled
// and has not drained to half yet), as that queue would drop its frame:
// counted the same, and the subscribers see the same gap, without the
// cost of encoding, batching and queueing it. Only a message whose
// encoded size is known without encoding it (a []byte or string body
// with the raw or msgpack codec) and is well within the size limit is
// dropped here: a message over the limit still fails with ErrTooLarge,
// whatever the load. The caller holds p.mu.
func (p *Publisher) shedEarly(ts *topicSeq, topic string, h spmesh.Header, codec spmesh.Codec, v any, data []byte, raw bool) bool {
	size := len(data)
	if !raw {
		if size = sock.KnownSize(codec, v); size == 0 {
			return false
		}
	}
	off := len(p.pend.buf)
	head := len(wire.AppendEntryHead(p.pend.buf, h)) - off
	// Slack: msgpack's header of a []byte or string (at most 5 bytes),
	// and a plain frame's envelope against a batch entry's.
	const slack = 64
	if size+head+wire.PublishOverhead(topic)+slack > p.so.Settings.MaxMsgSize {
		return false
	}
	if !p.pub.Shed(topic, 1) {
		return false
	}
	p.shed(ts)
	return true
}

// shed records a message dropped by Shed: its sequence number is used
// (the subscribers see the gap), and it counts as sent, like one that a
// queue dropped. The caller holds p.mu.
func (p *Publisher) shed(ts *topicSeq) {
	ts.seq++
	p.touched(ts)
	p.so.C.Sent.Add(1)
}

// wakeFlusher wakes the flusher if it waits. The caller holds p.mu.
func (p *Publisher) wakeFlusher() {
	if p.idle {
		p.idle = false
		p.wake <- struct{}{}
	}
}

// appendLarge encodes a large message straight into its own plain frame
// (time: now) and queues it in order. The caller holds p.mu; appendLarge
// releases it.
func (p *Publisher) appendLarge(ts *topicSeq, topic string, h spmesh.Header, codec spmesh.Codec, v any) error {
	env := wire.Msg{Kind: wire.KindPublish, Topic: topic, ID: p.so.NewID(), Time: time.Now().UnixNano(), Header: h, Pub: p.id, Seq: ts.seq + 1}
	m, err := p.so.EncodeWith(codec, &env, v)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	ts.seq++
	p.touched(ts)
	p.pend.large += len(m.Body)
	p.pend.ents = append(p.pend.ents, entry{topic: topic, end: len(p.pend.buf), seq: ts.seq, id: env.ID, frame: m})
	p.wakeFlusher()
	p.mu.Unlock()
	return nil
}

// topic returns topic's counter, validating a topic not seen before. The
// caller holds p.mu.
func (p *Publisher) topic(topic string) (*topicSeq, error) {
	if p.closed {
		return nil, spmesh.ErrClosed
	}
	if p.draining {
		return nil, errDraining
	}
	if p.last != nil && topic == p.lastTopic {
		return p.last, nil
	}
	ts := p.topics[topic]
	if ts == nil {
		if err := checkTopic(topic); err != nil {
			return nil, err
		}
		ts = &topicSeq{name: topic}
		p.topics[topic] = ts
	}
	p.lastTopic, p.last = topic, ts
	return ts, nil
}

// waitRoom waits, without p.mu, until the flusher takes the pending
// messages, p closes or ctx ends. It returns with p.mu held, or unlocked
// with ctx's error.
func (p *Publisher) waitRoom(ctx context.Context) error {
	p.waiters++
	room := p.room
	p.mu.Unlock()
	var err error
	select {
	case <-room:
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.mu.Lock()
	p.waiters--
	if err != nil {
		p.mu.Unlock()
	}
	return err
}

// sendNow encodes and sends one plain frame (batching off). The caller
// holds p.mu; sendNow releases it.
func (p *Publisher) sendNow(ts *topicSeq, topic string, h spmesh.Header, codec spmesh.Codec, v any) error {
	env := wire.Msg{Kind: wire.KindPublish, Topic: topic, ID: p.so.NewID(), Time: time.Now().UnixNano(), Header: h, Pub: p.id, Seq: ts.seq + 1}
	m, err := p.so.EncodeWith(codec, &env, v)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	err = p.pub.Send(m, 1)
	if err == nil {
		ts.seq++
		p.touched(ts)
	}
	p.mu.Unlock()
	if err != nil {
		return sock.Err(err)
	}
	p.so.C.Sent.Add(1)
	return nil
}

// flusher sends what Publish accepted: it takes the whole pending buffer
// at once (Publish goes on filling a fresh one meanwhile) and sends each run
// of messages on one topic as batch frames, a lone message as a plain frame.
// After Close it sends what is left, then returns.
func (p *Publisher) flusher() {
	defer close(p.done)
	var spare pending
	for {
		p.mu.Lock()
		for len(p.pend.ents) == 0 {
			if p.closed {
				p.mu.Unlock()
				return
			}
			p.idle = true
			if p.flushed != nil {
				close(p.flushed) // a Drain waits for this
				p.flushed = nil
			}
			p.mu.Unlock()
			<-p.wake
			p.mu.Lock()
		}
		work := p.pend
		p.pend = spare
		if p.waiters > 0 {
			close(p.room)
			p.room = make(chan struct{})
		}
		p.mu.Unlock()
		p.flush(&work)
		if cap(work.buf) > keepPending {
			work = pending{}
		}
		spare = pending{buf: work.buf[:0], ents: work.ents[:0]}
	}
}

// flush sends w's messages in order. All of them carry the same time: now.
func (p *Publisher) flush(w *pending) {
	now := time.Now().UnixNano()
	maxFrame := min(p.maxFrame, p.pub.BatchLimit())
	ents := w.ents
	start := 0 // content offset of ents[0]
	for len(ents) > 0 {
		first := &ents[0]
		if first.frame != nil && !first.ctl && p.pub.Shedding() && p.pub.Shed(first.topic, 1) {
			// Every subscriber that wants it sheds: not queued (counted).
			first.frame.Free()
			p.so.C.Sent.Add(1)
			ents = ents[1:]
			continue
		}
		if first.frame != nil {
			if first.ctl {
				if p.pub.SendControl(first.frame) != nil {
					p.dropRest(ents, 1)
					break
				}
			} else if !p.sendFrame(first.frame, 1, ents) {
				break
			}
			ents = ents[1:]
			continue
		}
		overhead := wire.PublishOverhead(first.topic) + 1 // batch header
		size := overhead
		firstID := binary.BigEndian.Uint64(first.id[8:])
		end := start
		n := 0
		for n < len(ents) && n < maxBatchMsgs {
			e := &ents[n]
			if n > 0 && (e.frame != nil || e.topic != first.topic || e.seq != first.seq+uint64(n) || binary.BigEndian.Uint64(e.id[8:]) != firstID+uint64(n)) {
				break
			}
			l := e.end - end
			if n > 0 && size+wire.EntryOverhead(l)+l > maxFrame {
				break
			}
			size += wire.EntryOverhead(l) + l
			end = e.end
			n++
		}
		if p.pub.Shedding() && p.pub.Shed(first.topic, n) {
			// Accepted before the subscribers' queues began shedding:
			// dropped without building the frame (counted).
			p.so.C.Sent.Add(uint64(n))
			ents = ents[n:]
			start = end
			continue
		}
		base := wire.Msg{Topic: first.topic, ID: first.id, Time: now, Pub: p.id, Seq: first.seq}
		var m *sock.Frame
		if n == 1 {
			m = sock.NewFrame(overhead + end - start)
			m.Body = wire.AppendPublishEntry(m.Body[:0], &base, w.buf[start:end])
		} else {
			m = sock.NewFrame(size)
			base.Kind = wire.KindBatch
			b := wire.AppendHeader(m.Body[:0], &base)
			off := start
			for i := range n {
				b = wire.AppendEntry(b, w.buf[off:ents[i].end])
				off = ents[i].end
			}
			m.Body = b
		}
		if !p.sendFrame(m, n, ents) {
			break
		}
		p.so.C.Sent.Add(uint64(n - 1))
		ents = ents[n:]
		start = end
	}
	clear(w.ents) // drop the topic strings and frames
	w.large = 0
}

// sendFrame sends m, the first frame for rest, carrying n messages. Only a
// closed socket fails: then rest is dropped, its large frames freed.
func (p *Publisher) sendFrame(m *sock.Frame, n int, rest []entry) bool {
	if err := p.pub.Send(m, n); err != nil {
		p.dropRest(rest, 1)
		return false
	}
	p.so.C.Sent.Add(1)
	return true
}

// dropRest counts the messages of rest as dropped (the socket closed) and
// frees the frames of rest[from:] (the earlier ones were handed over).
func (p *Publisher) dropRest(rest []entry, from int) {
	for i := range rest {
		if !rest[i].ctl {
			p.so.C.Drop(1, &p.so.C.DroppedClosed)
		}
		if f := rest[i].frame; f != nil && i >= from {
			f.Free()
		}
	}
}

// Stats returns the publisher's counters. Dropped counts the messages
// dropped for subscribers that did not keep up (their connection's queue
// was full; see [Publisher.SubscriberDrops]) and those still pending at
// Close.
func (p *Publisher) Stats() spmesh.Stats { return p.so.Stats() }

// SubscriberDrops returns, for each connected subscriber (by its remote
// address), how many messages were dropped for it since it connected
// because its connection's queue ([WithQueueLen] messages, [WithQueueBytes]
// bytes) was full: a subscriber, or a link, that does not keep up. The
// subscriber sees them as gaps.
func (p *Publisher) SubscriberDrops() map[string]uint64 { return p.pub.Drops() }

// errDraining is Publish's error once Drain was called.
var errDraining = fmt.Errorf("%w: publisher draining", spmesh.ErrClosed)

// Addrs returns the addresses the publisher listens on.
func (p *Publisher) Addrs() []string { return p.so.Bound() }

// Drain closes the publisher gracefully: Publish refuses new messages at
// once (an error wrapping [spmesh.ErrClosed]), the messages it accepted are
// handed to the connections, and Drain waits until every message queued
// for a connected subscriber has been written to it (with [WithBackpressure],
// until each subscriber took it or was cut off), then closes. A slow
// subscriber holds Drain back; a gone one does not (what was queued for it
// is dropped, counted). If ctx ends first, Drain closes at once: what is
// still queued is dropped and counted in Stats as Dropped (and
// DroppedClosed), and Drain returns ctx's error. Concurrent calls all wait;
// once closed (by Close or a Drain), Drain returns [spmesh.ErrClosed], as
// on every socket type.
func (p *Publisher) Drain(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return spmesh.ErrClosed
	}
	if !p.closed && !p.draining {
		p.queueTails() // the last sequence numbers, before draining
		p.draining = true
		p.so.C.Draining.Store(true)
		if p.waiters > 0 {
			close(p.room) // waiting Publish calls refuse
			p.room = make(chan struct{})
		}
	}
	var idle chan struct{}
	if p.batching && !p.closed && !(p.idle && len(p.pend.ents) == 0) {
		if p.flushed == nil {
			p.flushed = make(chan struct{})
		}
		idle = p.flushed
	}
	p.mu.Unlock()
	p.bareCalls.Stop()
	err := p.bareCalls.Wait(ctx)
	if err == nil && idle != nil {
		select {
		case <-idle:
		case <-p.done: // closed meanwhile
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err == nil {
		err = p.pub.Flushed(ctx)
	}
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close closes the publisher at once. Messages that Publish accepted are
// handed to the connections first (without waiting for any subscriber);
// messages still queued for a connection are dropped (counted in Stats as
// Dropped and DroppedClosed). [Publisher.Drain] is the graceful form. It is
// idempotent.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.queueTails() // before closed: the flusher sends them last
		p.closed = true
		if p.idle {
			p.idle = false
			p.wake <- struct{}{}
		}
		if p.waiters > 0 {
			close(p.room)
			p.room = make(chan struct{})
		}
	}
	p.mu.Unlock()
	p.pub.Abort() // with backpressure: wait for no subscriber
	<-p.done
	p.stopTails()
	return p.so.Close()
}
