// Package pubsub is publish/subscribe over mangos PUB/SUB sockets.
//
// # What is dropped, what blocks
//
//   - Delivery is at most once. A [Publisher] never waits on a slow or dead
//     subscriber beyond one short bound per shedding episode
//     ([WithShedWait], default 5 ms): when the queue it keeps for that
//     subscriber is full ([WithQueueLen] messages, [WithQueueBytes] bytes;
//     see "Queues"), it waits that long once for the queue to drain to
//     half, then drops messages for it until it has.
//   - Drops are visible: every message carries its publisher's id and a
//     sequence number per publisher and topic. A [Subscriber] counts the
//     holes per publisher in [Subscriber.Stats] (Publishers[id].Gaps, and
//     their sum in Dropped and DroppedGap), and tells [WithGapHandler] of each. A loss at
//     the end of a burst is counted too: a publisher idle for
//     [WithTailInterval] (200 ms) after publishing on a topic sends the
//     topic's last sequence number in a tail frame (and at Close), so such
//     a loss shows within about 0.5 s once the connection has caught up.
//     The publisher counts what its queues dropped per subscriber
//     ([Publisher.SubscriberDrops]) and tells [WithSlowSubscriber], like
//     NATS's slow-consumer error.
//   - A subscriber that connects mid-stream (or after a publisher restarts
//     with a new id) starts counting at the first message, or tail frame,
//     it gets from that publisher on that topic: what was published
//     before is not a gap. A subscriber that loses its connection and
//     reconnects to the same publisher counts what it missed meanwhile.
//   - A subscriber remembers at most 4096 publisher/topic sequences and
//     4096 publishers' counters; past either bound the least recently seen
//     are forgotten (a forgotten topic's next message starts its count
//     afresh, a forgotten publisher leaves Stats().Publishers), while the
//     publishers still sending keep their counts.
//   - Order is kept per publisher; messages of different publishers interleave.
//   - A subscriber receives only what is published while it is connected and
//     subscribed: there is no history or replay.
//   - A [Subscriber] holds at most [WithQueueLen] messages and
//     [WithQueueBytes] bytes that its application has not taken: past
//     either, its oldest queued messages are dropped to make room, counted
//     as gaps of their publisher (and in Dropped and DroppedQueueFull). Its reader keeps reading
//     meanwhile, so its socket's own queue stays short: a stalled
//     subscriber holds about WithQueueBytes whatever the message size.
//   - Frames that fail to decode (a foreign or hostile peer) are discarded
//     and counted in Stats().DecodeErrors. A batch frame is checked whole
//     before any of its messages is delivered: one bad entry (an empty one
//     included) discards the frame. Message.Decode checks the body before
//     decoding it (see the spmesh package doc, "Bodies from the network"). Frames over the maximum size
//     ([WithMaxMessageSize], default 8 MiB) close that connection (TCP), which
//     then reconnects; they are counted in the subscriber's Stats().TooLarge.
//     Publish of a message over the publisher's own limit fails with
//     [spmesh.ErrTooLarge] (before encoding when its size is known: []byte,
//     string) and is counted in the publisher's Stats().TooLarge. The
//     publisher cannot know a subscriber's smaller limit: give both the same.
//   - [Subscriber.Next] blocks until a message arrives or its ctx ends.
//     Publish blocks only to encode and queue, and, when it runs ahead of
//     its publisher's own sender by 256 KiB or 4096 messages, until that
//     sender catches up or ctx ends. The sender is CPU-bound, except that
//     it waits up to [WithShedWait] (5 ms) when a subscriber's queue
//     fills, once per shedding episode (see "Queues"): a stalled
//     subscriber costs one such wait, not one per message.
//   - A message that Publish accepted is sent even if Close follows at once;
//     what is still queued for a connection at Close is dropped (counted in
//     Dropped and DroppedClosed). [Publisher.Drain] is the graceful form:
//     Publish refuses from then on (an error wrapping [spmesh.ErrClosed]),
//     and Drain blocks until every message queued for a connected subscriber
//     has been written to its connection (a slow subscriber holds it back,
//     a gone one does not), or its ctx ends: then it closes at once, drops
//     what is left (counted) and returns ctx's error.
//
// # Lossless mode
//
// With [WithBackpressure] on both sides nothing is dropped: a publisher
// whose queue for a subscriber is full waits for room (Publish blocks,
// bounded by its ctx, and the publisher's rate follows its slowest
// subscriber), and a subscriber whose queue for the application is full
// stops reading its connections, so TCP flow control holds the publisher
// back. A subscriber that takes nothing for the stall time given is cut
// off by the publisher (its connection closed, counted in the publisher's
// Stats().SendTimeouts, what was queued for it counted in Dropped) so that
// it cannot stall the others forever. The subscriber notices the cut only
// when its application takes messages again (its connections are not read
// meanwhile, and its Stats().Peers still counts the connection); it then
// reconnects and counts what it missed as gaps. In this mode the queues below hold the publisher back
// instead of dropping, and the subscriber socket's frame queue is a few
// frames (its bytes bounded like a Puller's).
//
// # Queues
//
// A message goes through these queues, each bounded; the two that matter
// have one bound per side, in the same units, set by the same options
// ([WithQueueLen] messages, default [DefaultQueueLen] = 65,536, and
// [WithQueueBytes] bytes, default [DefaultQueueBytes] = 32 MiB):
//
//  1. The publisher's pending buffer (256 KiB or 4096 messages), between
//     Publish and its sender goroutine: full, Publish waits (CPU-bound,
//     or while the sender waits once per shedding episode, see 2).
//     Nothing is dropped there.
//  2. The publisher's queue per subscriber connection, in frames of
//     batched messages: bounded by both options, counting the messages
//     (and bytes) the frames carry. Full, the new frames for that
//     subscriber are dropped (after one wait, below): counted in the publisher's Stats().Dropped,
//     per subscriber in [Publisher.SubscriberDrops], logged. When the
//     queue fills, a shedding episode starts: the first frame that finds
//     it full waits up to [WithShedWait] (default 5 ms; the publisher's
//     sender waits, Publish may block on its pending buffer meanwhile)
//     for the queue to drain to half of both bounds. Drained in time,
//     that frame is queued, the episode ends and nothing is lost (a
//     burst absorbed). Not, the frame is dropped and the queue sheds
//     until it has drained to half, with no other wait: every new
//     frame for it is dropped at once meanwhile, so that an overloaded subscriber
//     loses runs of messages (few, long gaps) rather than one frame in
//     two; and while every subscriber that wants a topic sheds, Publish
//     drops its messages on that topic before encoding them (counted the
//     same, the same gaps), so that dropping costs the publisher next to
//     nothing (a []byte or string body with the raw or msgpack codec;
//     another is encoded first, to check its size).
//  3. The kernel's and transport's buffers on the TCP connection (a few
//     MiB at most); TCP flow control, nothing dropped.
//  4. The subscriber socket's frame queue, shared by all its connections:
//     bounded by both options (WithQueueLen frames, WithQueueBytes bytes
//     of frames; a frame larger than WithQueueBytes still enters it
//     empty). Its reader goroutine empties it as fast as it decodes, never
//     waiting for the application: it fills only while the reader is
//     behind the network (a CPU-starved host); full, its oldest frames are
//     dropped until the new one fits (seen as gaps: Stats().DroppedGap; a
//     bare subscriber counts the frames in DroppedQueueFull). With [WithBackpressure] nothing is
//     dropped there: full, it stops reading its connections (TCP flow
//     control then holds the publishers back).
//  5. The subscriber's queue for the application (what Next, All and C
//     take): bounded by both options. Full, its oldest messages are
//     dropped (counted as gaps, and in Dropped).
//
// So a publisher holds up to WithQueueBytes for each subscriber that does
// not keep up, and a subscriber up to WithQueueBytes for an application
// that does not take its messages (plus up to WithQueueBytes in its frame
// queue while its reader is behind, or with WithBackpressure). With the defaults a burst of 50,000
// messages of 256 bytes published in a tight loop reaches three
// subscribers on one host complete; raise both sides together for longer
// bursts (a bound on one side alone moves the drops to the other).
//
// # Batching
//
// A [Publisher] encodes each message into a pending buffer and wakes its
// sender goroutine, which takes everything pending at once: a lone message
// goes out at once as a plain frame; a burst on one topic goes out in batch
// frames (up to 256 messages each, the wire format is in WIRE.md), so that
// a burst costs one frame per batch on both sides; a message of half the
// batch bound or more goes in a frame of its own. A batch frame holds up
// to 64 KiB - 1 bytes, and no more than any connected subscriber accepts:
// each spmesh Subscriber announces its receive limit (WithMaxMessageSize)
// to its publishers, and while one has not (a subscriber of an spmesh
// older than WIRE.md key 14, a stock SUB, or one whose announcement is on
// its way) batch frames stay under 8 KiB, as they always were. A limit
// under 8 KiB counts as 8 KiB (a subscriber cannot shrink everyone's
// frames; one with so small a WithMaxMessageSize refuses larger frames, as
// it always did). A frame built before a subscriber connected may still
// reach it; one over its limit is refused there (counted in its
// TooLarge). Consequences:
//
//   - [Message.Time] is when the publisher's sender took the message, one
//     clock reading for everything it took together (within microseconds
//     of Publish under load, at once when idle).
//   - Queue bounds count messages, not frames: a batch frame counts the
//     messages it carries (see "Queues"). A publisher's queue for a
//     subscriber drops whole frames (as mangos PUB does; the subscriber
//     sees the gaps).
//   - Messages of one batch share its memory on the subscriber: holding a
//     [Message] keeps the batch's bodies alive.
//   - Subscribers of spmesh versions before batch frames discard them as
//     undecodable: give such a mesh's publishers WithBatching(false).
//
// # Topics
//
// Topics are dot-separated tokens, as in NATS: "images.ready" matches only
// itself (never "images.ready2" or "images.ready.x"); "images.*" matches one
// token; "images.>" matches one or more; ">" matches everything. Publish
// topics have no wildcards. Spaces and control bytes are not allowed.
//
// Filtering happens at the publisher too: a [Subscriber] tells each
// publisher its subscriptions' literal prefixes (the tokens before the
// first wildcard) in an interest frame (internal/wire, kind 11) when it
// connects and after each Subscribe or Unsubscribe, and the publisher
// queues for it only the frames whose topic starts with one of them, so a
// subscriber costs nothing for topics it does not want (the subscriber
// still filters exactly). A subscriber that sends no interest frame (a
// stock SUB, an older spmesh) gets everything. Subscriptions given at
// construction ([WithSubscribe]) are in the first interest frame; a later
// Subscribe takes effect at the publisher when its frame arrives (about a
// round trip): messages published meanwhile on the new topics may miss
// this subscriber.
//
// # Bare frames
//
// With [WithBareFrames] on both sides, a frame is the topic's bytes
// followed by the body's, no envelope: the NNG convention, so that NNG,
// nanomsg and pynng PUB and SUB programs interoperate. What changes:
//
//   - A bare Subscriber's subscriptions are byte prefixes (no wildcards; ""
//     is everything); a frame is delivered once, Topic the longest prefix
//     it starts with, Data the rest. It sends its publishers nothing (no
//     interest frames), so they filter nothing for it.
//   - Dropped: headers (a publish with headers fails), ids, publisher ids,
//     sequence numbers and so gap detection and tail frames, the send
//     time, batching (every message is its own frame). A bare Subscriber
//     counts what its own queues drop in Dropped (and tells
//     [WithGapHandler] of its application queue's drops as Local gaps);
//     the publisher counts its drops per subscriber as usual.
//   - What blocks is unchanged, except that a bare Publish with
//     [WithBackpressure] waits in the fan-out itself (as with
//     WithBatching(false)): bounded by the stall time, not by its ctx.
//   - A bare Subscriber takes spmesh envelopes as opaque bytes; an
//     enveloped one discards bare frames.
//
// # Tracing
//
// With [WithTracer] Publish starts a producer span (ended once queued; its
// context travels in the headers, batched or not) and a Subscriber a
// consumer span per message, ended when queued; [Message.Context] carries
// it. See [spmesh.Tracer].
//
// # Constructors and workflow
//
//   - [NewPublisher]: binds (listens) or dials; with [WithDiscovery] it
//     listens on an ephemeral port and advertises itself for the service.
//   - [NewSubscriber]: dials or listens; with [WithDiscovery] it dials every
//     publisher of the service and hangs up when one goes away.
//
// Subscribe with [WithSubscribe] or [Subscriber.Subscribe], then receive with
// [Subscriber.Next], the iterator [Subscriber.All], or the channel
// [Subscriber.C] in a select. [spmesh.Decode] turns a message into a typed value.
// [Subscriber.Close] drops what is queued; [Subscriber.Drain] hands it over
// first. Options of one side only (such as [WithSubscribe] or
// [WithSlowSubscriber]) are refused by the other side with an error naming
// the option; Decode on a zero Message returns an error, never panics.
package pubsub
