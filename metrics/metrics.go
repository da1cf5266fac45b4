package metrics

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/pipeline"
	"github.com/spmesh/spmesh/pubsub"
	"github.com/spmesh/spmesh/reqrep"
	"github.com/spmesh/spmesh/survey"
)

// Errors returned by [Collector.Add] and [Collector.AddNode].
var (
	// ErrDuplicate: a socket with the same service and role (or a node
	// with the same name) is already added; Prometheus refuses two series
	// with the same labels, so the collector refuses them first.
	ErrDuplicate = errors.New("spmesh: metrics: already added")
	// ErrUnsupported: the value has no Stats method of a known type.
	ErrUnsupported = errors.New("spmesh: metrics: no known Stats method")
)

// MaxPeers bounds the per-peer series of one socket: past it, peers are
// left out of the spmesh_peer_* metrics (the socket totals still count
// them).
const MaxPeers = 64

// metric is one exported family.
type metric struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	short string // the name without "spmesh_": the key in a SocketSnapshot
}

var (
	sockLabels = []string{"service", "role"}
	peerLabels = []string{"service", "role", "peer"}
	nodeLabels = []string{"node"}
	all        []*metric
)

func def(name, help string, typ prometheus.ValueType, labels []string) *metric {
	m := &metric{desc: prometheus.NewDesc(name, help, labels, nil), typ: typ, short: strings.TrimPrefix(name, "spmesh_")}
	all = append(all, m)
	return m
}

func counter(name, help string) *metric {
	return def(name, help, prometheus.CounterValue, sockLabels)
}

func gauge(name, help string) *metric {
	return def(name, help, prometheus.GaugeValue, sockLabels)
}

// Socket metrics (spmesh.Stats: every socket type).
var (
	mSent             = counter("spmesh_messages_sent_total", "Messages handed to the transport.")
	mReceived         = counter("spmesh_messages_received_total", "Messages delivered to the application.")
	mDropped          = counter("spmesh_dropped_total", "Messages known lost: the sum of the spmesh_dropped_*_total causes.")
	mRetries          = counter("spmesh_retries_total", "Retransmissions: requests resent, jobs redelivered.")
	mDecodeErrors     = counter("spmesh_decode_errors_total", "Frames or payloads that failed to decode and were discarded.")
	mTooLarge         = counter("spmesh_too_large_total", "Messages refused for size, on send or on receive.")
	mSendTimeouts     = counter("spmesh_send_timeouts_total", "Replies, acks and answers dropped because the peer did not take them in time.")
	mConnsRefused     = counter("spmesh_conns_refused_total", "Incoming connections refused at the listener's connection cap.")
	mConnTimeouts     = counter("spmesh_conn_timeouts_total", "Connections closed because a frame did not complete in time or the idle timeout passed.")
	mHandshakeErrors  = counter("spmesh_handshake_errors_total", "Failed SP or TLS handshakes, on either side.")
	mEndpointsRefused = counter("spmesh_endpoints_refused_total", "Discovered endpoints not dialled because the security policy refused them.")
	mPeers            = gauge("spmesh_peers", "Connections currently established.")
	mBytesSent        = counter("spmesh_sent_bytes_total", "Bytes of the frames written to connections (frame bodies: envelope and payload), once per connection written to.")
	mDroppedQueueFull = counter("spmesh_dropped_queue_full_total", "Messages dropped because a queue was full (also in spmesh_dropped_total).")
	mDroppedClosed    = counter("spmesh_dropped_closed_total", "Messages dropped because their connection or socket closed while queued or being sent (also in spmesh_dropped_total).")
	mBytesReceived    = counter("spmesh_received_bytes_total", "Bytes of the frames read from connections (frame bodies: envelope and payload).")

	mDroppedTooLarge    = counter("spmesh_dropped_too_large_total", "Received messages over the size limit, discarded (also in spmesh_dropped_total and spmesh_too_large_total).")
	mDroppedSendTimeout = counter("spmesh_dropped_send_timeout_total", "Replies, acks and answers the peer did not take in time (also in spmesh_dropped_total and spmesh_send_timeouts_total).")
	mDroppedExpired     = counter("spmesh_dropped_expired_total", "Requests and jobs that arrived after their caller's deadline, not handled (also in spmesh_dropped_total).")
	mDroppedGap         = counter("spmesh_dropped_gap_total", "Messages a subscriber never received: holes in the publishers' sequence numbers (also in spmesh_dropped_total).")
	mDroppedLate        = counter("spmesh_dropped_late_total", "Answers to a survey that had already ended (also in spmesh_dropped_total).")
	mDraining           = gauge("spmesh_draining", "1 once Drain has been called: the socket takes no new work.")
)

// Per-type metrics: the same name for the same thing across socket types.
var (
	mInFlight      = gauge("spmesh_in_flight", "Requests, jobs or surveys in progress: calls waiting (requester), jobs unacked (producer), surveys open (surveyor), handlers running (replier, worker, respondent).")
	mTimeouts      = counter("spmesh_timeouts_total", "Attempts or deliveries that got no reply or ack within their timeout.")
	mLost          = counter("spmesh_lost_total", "Attempts or deliveries whose connection dropped before the reply or ack.")
	mRemoteErrors  = counter("spmesh_remote_errors_total", "Replies that carried the peer's handler error: error replies (requester), nacks (producer).")
	mHandlerErrors = counter("spmesh_handler_errors_total", "This socket's own handler failed or panicked (replier, worker, respondent).")
	mPanics        = counter("spmesh_handler_panics_total", "Recovered handler panics.")
	mAbandoned     = counter("spmesh_handlers_abandoned_total", "Handlers still running when Close stopped waiting for them.")
	mAcked         = counter("spmesh_acked_total", "Jobs acked: by a worker (producer), handler returned nil (worker).")
	mProduced      = counter("spmesh_produced_total", "Jobs accepted by Produce, ProduceAsync or Submit.")
	mDeadLettered  = counter("spmesh_dead_lettered_total", "Jobs that ran out of attempts.")
	mFailed        = counter("spmesh_failed_total", "Jobs that ended otherwise unacked: ctx ended, closed, no worker.")
	mRecovered     = counter("spmesh_recovered_total", "Jobs found in the outbox at open and sent again.")
	mDuplicates    = counter("spmesh_duplicates_total", "Deliveries acked from the de-duplication window without running the handler.")
	mDeclined      = counter("spmesh_declined_total", "Survey answers that declined.")
	mReplyTime     = def("spmesh_reply_seconds", "Time from sending a request, job delivery or survey to its reply, ack or answer.", prometheus.UntypedValue, sockLabels)
)

// Per-peer metrics (requester, producer), at most MaxPeers peers a socket.
var (
	mPeerInFlight  = def("spmesh_peer_in_flight", "Requests or jobs sent to the peer and not answered yet.", prometheus.GaugeValue, peerLabels)
	mPeerCredit    = def("spmesh_peer_credit", "Requests or jobs the peer takes at once.", prometheus.GaugeValue, peerLabels)
	mPeerDone      = def("spmesh_peer_done_total", "Replies (acks and nacks) received from the peer.", prometheus.CounterValue, peerLabels)
	mPeerFailed    = def("spmesh_peer_failed_total", "Requests or jobs sent to the peer that were lost, timed out or abandoned.", prometheus.CounterValue, peerLabels)
	mPeerReplyTime = def("spmesh_peer_mean_reply_seconds", "Mean time from sending a request or job to the peer to its reply.", prometheus.GaugeValue, peerLabels)
)

// Discovery node metrics (discovery.Stats).
var (
	mNodeEndpointsRefused = def("spmesh_discovery_endpoints_refused_total", "Endpoints advertised by other members that this node did not list.", prometheus.CounterValue, nodeLabels)
	mNodeRecordsRefused   = def("spmesh_discovery_records_refused_total", "Records refused because they did not come from the node they name.", prometheus.CounterValue, nodeLabels)
	mNodeMembersRefused   = def("spmesh_discovery_members_refused_total", "Alive messages refused for the member's gossip address.", prometheus.CounterValue, nodeLabels)
	mNodeHandshakeErrors  = def("spmesh_discovery_handshake_errors_total", "Records exchanges that failed to authenticate.", prometheus.CounterValue, nodeLabels)
	mNodePullErrors       = def("spmesh_discovery_pull_errors_total", "Failed records pulls of any cause.", prometheus.CounterValue, nodeLabels)
	mNodeGossipRefused    = def("spmesh_discovery_gossip_refused_total", "Gossip refused: wrong label or key, address outside the allowed CIDRs.", prometheus.CounterValue, nodeLabels)
	mNodeDroppedEvents    = def("spmesh_discovery_dropped_events_total", "Node events that did not fit the event buffer.", prometheus.CounterValue, nodeLabels)
	mNodeMembers          = def("spmesh_discovery_members", "Members known by state: alive (this node and suspects included), suspect, left and failed (recently).", prometheus.GaugeValue, []string{"node", "state"})
)

// memberCounter is what a node added with AddNode may also have: a
// [discovery.Node] has it.
type memberCounter interface {
	MemberCounts() discovery.MemberCounts
}

var _ memberCounter = (*discovery.Node)(nil)

// Collector is a [prometheus.Collector] over the Stats of the sockets and
// discovery nodes added to it. It reads them when scraped only. A Collector
// is safe for concurrent use.
type Collector struct {
	mu    sync.Mutex
	socks map[sockKey]func(*emitter)
	nodes map[string]NodeStatser
}

type sockKey struct{ service, role string }

// NodeStatser is what [Collector.AddNode] reads: a [discovery.Node].
type NodeStatser interface {
	Name() string
	Stats() discovery.Stats
}

var _ NodeStatser = (*discovery.Node)(nil)

// NewCollector returns an empty collector. Register it once
// (prometheus.MustRegister(c)) and add sockets and nodes to it as they
// open; they may be added and removed after registration.
func NewCollector() *Collector {
	return &Collector{socks: map[sockKey]func(*emitter){}, nodes: map[string]NodeStatser{}}
}

// Add exports the Stats of s labelled service and role. s is any value
// with a Stats method returning [spmesh.Stats] (Publisher, Pusher, Puller),
// [pubsub.SubscriberStats], [reqrep.RequesterStats], [reqrep.ReplierStats],
// [pipeline.ProducerStats], [pipeline.WorkerStats], [survey.SurveyorStats]
// or [survey.RespondentStats]. It returns [ErrDuplicate] if the pair is
// already added and [ErrUnsupported] for any other s.
func (c *Collector) Add(service, role string, s any) error {
	read, err := reader(s)
	if err != nil {
		return fmt.Errorf("%w: %T", err, s)
	}
	k := sockKey{service, role}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.socks[k]; ok {
		return fmt.Errorf("%w: service %q role %q", ErrDuplicate, service, role)
	}
	c.socks[k] = read
	return nil
}

// Remove stops exporting the socket added with service and role, e.g.
// once it is closed. It reports whether there was one.
func (c *Collector) Remove(service, role string) bool {
	k := sockKey{service, role}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.socks[k]
	delete(c.socks, k)
	return ok
}

// AddNode exports the Stats of a discovery node, labelled with its name.
// It returns [ErrDuplicate] if a node of that name is already added.
func (c *Collector) AddNode(n NodeStatser) error {
	name := n.Name()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.nodes[name]; ok {
		return fmt.Errorf("%w: node %q", ErrDuplicate, name)
	}
	c.nodes[name] = n
	return nil
}

// RemoveNode stops exporting the node of that name. It reports whether
// there was one.
func (c *Collector) RemoveNode(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.nodes[name]
	delete(c.nodes, name)
	return ok
}

// Describe sends every metric family the collector may export.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range all {
		ch <- m.desc
	}
}

// Collect reads the Stats of every socket and node added and sends them.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	type sock struct {
		k    sockKey
		read func(*emitter)
	}
	c.mu.Lock()
	socks := make([]sock, 0, len(c.socks))
	for k, r := range c.socks {
		socks = append(socks, sock{k, r})
	}
	nodes := make([]NodeStatser, 0, len(c.nodes))
	for _, n := range c.nodes {
		nodes = append(nodes, n)
	}
	c.mu.Unlock()
	for _, s := range socks {
		s.read(&emitter{ch: ch, service: s.k.service, role: s.k.role})
	}
	for _, n := range nodes {
		collectNode(ch, n)
	}
}

// nodeFigure is one counter of discovery.Stats.
type nodeFigure struct {
	m *metric
	v uint64
}

func nodeFigures(st discovery.Stats) []nodeFigure {
	return []nodeFigure{
		{mNodeEndpointsRefused, st.EndpointsRefused},
		{mNodeRecordsRefused, st.RecordsRefused},
		{mNodeMembersRefused, st.MembersRefused},
		{mNodeHandshakeErrors, st.HandshakeErrors},
		{mNodePullErrors, st.PullErrors},
		{mNodeGossipRefused, st.GossipRefused},
		{mNodeDroppedEvents, st.DroppedEvents},
	}
}

func collectNode(ch chan<- prometheus.Metric, n NodeStatser) {
	name := n.Name()
	for _, p := range nodeFigures(n.Stats()) {
		ch <- prometheus.MustNewConstMetric(p.m.desc, p.m.typ, float64(p.v), name)
	}
	if mc, ok := n.(memberCounter); ok {
		c := mc.MemberCounts()
		for _, s := range []struct {
			state string
			v     int
		}{{"alive", c.Alive}, {"suspect", c.Suspect}, {"left", c.Left}, {"failed", c.Failed}} {
			ch <- prometheus.MustNewConstMetric(mNodeMembers.desc, mNodeMembers.typ, float64(s.v), name, s.state)
		}
	}
}

// emitter sends the metrics of one socket to Prometheus (ch), or records
// them in a snapshot (snap, when not nil).
type emitter struct {
	ch            chan<- prometheus.Metric
	service, role string
	snap          *SocketSnapshot
}

func (e *emitter) u(m *metric, v uint64) { e.f(m, float64(v)) }

func (e *emitter) i(m *metric, v int) { e.f(m, float64(v)) }

func (e *emitter) f(m *metric, v float64) {
	if e.snap != nil {
		e.snap.Values[m.short] = v
		return
	}
	e.ch <- prometheus.MustNewConstMetric(m.desc, m.typ, v, e.service, e.role)
}

func (e *emitter) b(m *metric, v bool) {
	if v {
		e.f(m, 1)
	} else {
		e.f(m, 0)
	}
}

func (e *emitter) base(st spmesh.Stats) {
	e.u(mSent, st.Sent)
	e.u(mReceived, st.Received)
	e.u(mDropped, st.Dropped)
	e.u(mRetries, st.Resent)
	e.u(mDecodeErrors, st.DecodeErrors)
	e.u(mTooLarge, st.TooLarge)
	e.u(mSendTimeouts, st.SendTimeouts)
	e.u(mConnsRefused, st.ConnsRefused)
	e.u(mConnTimeouts, st.ConnTimeouts)
	e.u(mHandshakeErrors, st.HandshakeErrors)
	e.u(mEndpointsRefused, st.EndpointsRefused)
	e.i(mPeers, st.Peers)
	e.u(mBytesSent, st.BytesSent)
	e.u(mBytesReceived, st.BytesReceived)
	e.u(mDroppedQueueFull, st.DroppedQueueFull)
	e.u(mDroppedClosed, st.DroppedClosed)
	e.u(mDroppedTooLarge, st.DroppedTooLarge)
	e.u(mDroppedSendTimeout, st.DroppedSendTimeout)
	e.u(mDroppedExpired, st.DroppedExpired)
	e.u(mDroppedGap, st.DroppedGap)
	e.u(mDroppedLate, st.DroppedLate)
	e.b(mDraining, st.Draining)
}

// histogram sends h as a Prometheus histogram (cumulative buckets, in
// seconds), or records its count and sum in a snapshot
// ("reply_seconds_count", "reply_seconds_sum").
func (e *emitter) histogram(m *metric, h spmesh.Histogram) {
	if e.snap != nil {
		e.snap.Values[m.short+"_count"] = float64(h.Count)
		e.snap.Values[m.short+"_sum"] = h.Sum.Seconds()
		return
	}
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		cum += h.Counts[i]
		buckets[b.Seconds()] = cum
	}
	e.ch <- prometheus.MustNewConstHistogram(m.desc, h.Count, h.Sum.Seconds(), buckets, e.service, e.role)
}

func (e *emitter) peers(ps []spmesh.PeerStats) {
	if e.snap != nil {
		e.snap.peers(ps)
		return
	}
	seen := make(map[string]bool, min(len(ps), MaxPeers))
	for _, p := range ps {
		if len(seen) == MaxPeers {
			return
		}
		addr := p.Addr
		if seen[addr] {
			// Two connections to one address: keep the first, a
			// second series with the same labels is an error.
			continue
		}
		seen[addr] = true
		for _, v := range []struct {
			m *metric
			v float64
		}{
			{mPeerInFlight, float64(p.InFlight)},
			{mPeerCredit, float64(p.Credit)},
			{mPeerDone, float64(p.Done)},
			{mPeerFailed, float64(p.Failed)},
			{mPeerReplyTime, p.MeanReplyTime.Seconds()},
		} {
			e.ch <- prometheus.MustNewConstMetric(v.m.desc, v.m.typ, v.v, e.service, e.role, addr)
		}
	}
}

// server sends the figures every serving side (Replier, Worker,
// Respondent) has: its socket's, handlers running, failed, panicked and
// abandoned.
func (e *emitter) server(st spmesh.Stats, inFlight int, handlerErrors, panics, abandoned uint64) {
	e.base(st)
	e.i(mInFlight, inFlight)
	e.u(mHandlerErrors, handlerErrors)
	e.u(mPanics, panics)
	e.u(mAbandoned, abandoned)
}

// caller sends the figures every calling side (Requester, Producer) has:
// its socket's, calls in progress, attempts timed out, lost and failed
// remotely, the reply times and the per-peer dispatch counters.
func (e *emitter) caller(st spmesh.Stats, inFlight int, timeouts, lost, remoteErrors uint64, replyTime spmesh.Histogram, perPeer []spmesh.PeerStats) {
	e.base(st)
	e.i(mInFlight, inFlight)
	e.u(mTimeouts, timeouts)
	e.u(mLost, lost)
	e.u(mRemoteErrors, remoteErrors)
	e.histogram(mReplyTime, replyTime)
	e.peers(perPeer)
}

// reader returns the function that reads s at scrape time.
func reader(s any) (func(*emitter), error) {
	switch s := s.(type) {
	case interface{ Stats() spmesh.Stats }:
		return func(e *emitter) { e.base(s.Stats()) }, nil
	case interface{ Stats() pubsub.SubscriberStats }:
		return func(e *emitter) { e.base(s.Stats().Stats) }, nil
	case interface{ Stats() reqrep.RequesterStats }:
		return func(e *emitter) {
			st := s.Stats()
			e.caller(st.Stats, st.InFlight, st.Timeouts, st.Lost, st.RemoteErrors, st.ReplyTime, st.PerPeer)
		}, nil
	case interface{ Stats() reqrep.ReplierStats }:
		return func(e *emitter) {
			st := s.Stats()
			e.server(st.Stats, st.InFlight, st.HandlerErrors, st.Panics, st.Abandoned)
		}, nil
	case interface{ Stats() pipeline.ProducerStats }:
		return func(e *emitter) {
			st := s.Stats()
			e.caller(st.Stats, st.InFlight, st.Timeouts, st.Lost, st.RemoteErrors, st.ReplyTime, st.PerPeer)
			e.u(mAcked, st.Acked)
			e.u(mProduced, st.Produced)
			e.u(mDeadLettered, st.DeadLettered)
			e.u(mFailed, st.Failed)
			e.u(mRecovered, st.Recovered)
		}, nil
	case interface{ Stats() pipeline.WorkerStats }:
		return func(e *emitter) {
			st := s.Stats()
			e.server(st.Stats, st.InFlight, st.HandlerErrors, st.Panics, st.Abandoned)
			e.u(mAcked, st.Acked)
			e.u(mDuplicates, st.Duplicates)
		}, nil
	case interface{ Stats() survey.SurveyorStats }:
		return func(e *emitter) {
			st := s.Stats()
			e.base(st.Stats)
			e.i(mInFlight, st.InFlight)
			e.histogram(mReplyTime, st.ReplyTime)
		}, nil
	case interface{ Stats() survey.RespondentStats }:
		return func(e *emitter) {
			st := s.Stats()
			e.server(st.Stats, st.InFlight, st.HandlerErrors, st.Panics, st.Abandoned)
			e.u(mDeclined, st.Declined)
		}, nil
	}
	return nil, ErrUnsupported
}
