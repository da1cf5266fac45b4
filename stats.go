package spmesh

import "time"

// Stats are a socket's counters since it was opened. Every pattern type has a
// Stats method returning them (some add pattern-specific detail).
//
// Every refusal spmesh makes to protect a process from a peer is counted in
// one of the fields below, so that a limit that bites is never silent.
type Stats struct {
	Sent         uint64 // messages handed to the transport
	Received     uint64 // messages delivered to the application
	Dropped      uint64 // messages known lost: the sum of the Dropped* causes below
	Resent       uint64 // retransmissions (requests, redelivered jobs)
	DecodeErrors uint64 // frames or payloads that failed to decode and were discarded
	Peers        int    // connections currently established

	// BytesSent and BytesReceived count the bytes of the frames handed
	// to the transport and taken from it: each frame's body (the spmesh
	// envelope with its payload, or a bare frame; interest frames and
	// tail frames included), not the SP header (request and survey ids)
	// nor the transport's length prefix. A frame is counted once per
	// connection it is written to: a publisher's frame sent to three
	// subscribers counts three times, a survey once per respondent
	// it is written to. Frames the transport refused for size
	// are not counted here (see TooLarge). Replier, Worker, Respondent
	// and Puller count a received frame when mangos' protocol
	// hands it over: one it discards itself (a malformed SP header) is
	// not counted. A Surveyor counts every answer read (late ones too).
	BytesSent, BytesReceived uint64

	// The Dropped* fields break Dropped down by cause: every message
	// counted in Dropped is counted in exactly one of them, so Dropped is
	// their sum (read while traffic goes on, they may disagree by the
	// drops being counted).
	//
	// DroppedQueueFull: a queue was full: a publisher's queue for a
	// subscriber that does not keep up, a subscriber's or puller's own
	// receive queue (its oldest message goes), a survey's answer queue.
	DroppedQueueFull uint64
	// DroppedClosed: the message's connection or socket closed while it
	// was queued or being sent (a pusher's queued messages for a puller
	// that went, a reply whose requester's connection closed, messages
	// still queued at Close, a request or survey caught by Drain).
	DroppedClosed uint64
	// DroppedTooLarge: a received message over the size limit, discarded
	// (also counted in TooLarge, which counts sends refused too).
	DroppedTooLarge uint64
	// DroppedSendTimeout: a reply, ack or answer the peer did not take
	// within the send timeout (also counted in SendTimeouts).
	DroppedSendTimeout uint64
	// DroppedExpired: a request or job that arrived after its caller's
	// deadline, not handed to the handler (Replier, Worker; answered with
	// an error).
	DroppedExpired uint64
	// DroppedGap: messages a subscriber never received: holes in a
	// publisher's sequence numbers (lost in the publisher's queue for
	// it, in its own frame queue, or with a connection). The
	// per-publisher view is in the Subscriber's Stats.
	DroppedGap uint64
	// DroppedLate: answers that arrived after their survey ended
	// (Surveyor).
	DroppedLate uint64

	// TooLarge counts messages refused for size, on send or on receive
	// (a received one discarded is also counted in Dropped and
	// DroppedTooLarge).
	TooLarge uint64
	// SendTimeouts counts replies, acks and answers dropped because the
	// peer did not take them within the send timeout (a peer that stopped
	// reading) or while another reply to it was waiting (also in Dropped
	// and DroppedSendTimeout), and subscribers cut off for stalling with
	// WithBackpressure. Either way its connection is then closed, so that
	// the peer resends what it had in flight when it reconnects: a
	// dropped reply costs a resend, never a call that waits for it
	// forever.
	SendTimeouts uint64
	// ConnsRefused counts incoming connections refused at the listener's
	// connection cap.
	ConnsRefused uint64
	// ConnTimeouts counts connections closed because a frame did not
	// complete in time, or nothing arrived before the idle timeout.
	ConnTimeouts uint64
	// HandshakeErrors counts failed SP or TLS handshakes, on either side.
	HandshakeErrors uint64
	// EndpointsRefused counts discovered endpoints this socket did not dial
	// because the security policy refused them (a plaintext endpoint when
	// TLS is required, a scheme not allowed for remote members), or
	// because their framing is not the socket's (a bare endpoint for an
	// enveloped socket, or the reverse: see Endpoint.Bare).
	EndpointsRefused uint64
	// Draining is true once Drain has been called: the socket takes no new
	// work (it stays true once Drain has closed the socket).
	Draining bool
	// LastError is the last connection-level error (dial, handshake, TLS),
	// with the peer's address; empty when there was none.
	LastError string
}

// PeerStats are the dispatch counters of one connected peer of a requester
// or producer (a replier or worker): spmesh sends a peer no more than its
// Credit at once, preferring the peer with the fewest in flight.
type PeerStats struct {
	Addr     string // the peer's remote address
	Credit   int    // requests it takes at once: announced, else the default
	InFlight int    // requests (jobs) sent to it and not answered yet
	Done     uint64 // replies (acks and nacks) received from it
	Failed   uint64 // requests sent to it that were lost, timed out or abandoned
	// Others is what the peer runs for other requesters or producers, as
	// its last reply said (a Worker's acks carry it; 0 for a Replier): it
	// counts as load there and is taken off its Credit, down to 1.
	Others int
	// MeanReplyTime is the mean time from sending a request (job) to it to
	// its reply (ack or nack): its service time plus the network.
	MeanReplyTime time.Duration
}

// Histogram is a distribution of durations in fixed buckets: Counts[i]
// observations were at most Bounds[i] (and above Bounds[i-1]); the last
// of Counts, one more than Bounds, counts those above every bound. Count is
// the sum of Counts and Sum the total of every observation. The buckets
// are not cumulative (Prometheus's are: the metrics package converts).
// Read while observations go on, the fields may disagree by the few
// observations in progress.
type Histogram struct {
	Bounds []time.Duration
	Counts []uint64
	Count  uint64
	Sum    time.Duration
}

// Mean is Sum/Count, 0 when empty.
func (h Histogram) Mean() time.Duration {
	if h.Count == 0 {
		return 0
	}
	return h.Sum / time.Duration(h.Count)
}
