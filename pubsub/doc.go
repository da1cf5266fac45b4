// Package pubsub is publish/subscribe over mangos PUB/SUB sockets.
//
// # What is dropped, what blocks
//
//   - Delivery is at most once. A [Publisher] never blocks on a slow or dead
//     subscriber: when a subscriber's queue ([WithQueueLen], default 1024) is
//     full, messages for it are dropped.
//   - Drops are visible: every message carries its publisher's id and a
//     sequence number per publisher and topic. A [Subscriber] counts the
//     holes per publisher in [Subscriber.Stats] (Publishers[id].Gaps, and
//     their sum in Dropped). A loss after the last message received shows up
//     only when a later message from that publisher arrives.
//   - Order is kept per publisher; messages of different publishers interleave.
//   - A subscriber receives only what is published while it is connected and
//     subscribed: there is no history or replay.
//   - A [Subscriber] holds at most [WithQueueLen] messages (default 1024)
//     and [WithQueueBytes] bytes (default 16 MiB) that its application has
//     not taken: past either, its oldest queued messages are dropped to make
//     room, counted as gaps of their publisher (and in Dropped). Its reader
//     keeps reading meanwhile, so its socket's own queue stays short: a
//     stalled subscriber holds about WithQueueBytes whatever the message
//     size.
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
//     sender (CPU-bound, never waiting on a subscriber) catches up or ctx
//     ends.
//   - A message that Publish accepted is sent even if Close follows at once;
//     what is still queued for a connection at Close is dropped.
//
// # Batching
//
// A [Publisher] encodes each message into a pending buffer and wakes its
// sender goroutine, which takes everything pending at once: a lone message
// goes out at once as a plain frame; a burst on one topic goes out in batch
// frames (up to 256 messages or 8 KiB each, the wire format is in
// internal/wire), so that a burst costs one frame per batch on both sides.
// Consequences:
//
//   - [Message.Time] is when the publisher's sender took the message, one
//     clock reading for everything it took together (within microseconds
//     of Publish under load, at once when idle).
//   - Queue lengths ([WithQueueLen]) count frames on the publisher's
//     connections and on the subscriber's socket, and messages on the
//     subscriber's channel (also bounded in bytes, [WithQueueBytes]). A
//     publisher's queue for a subscriber that does not keep up drops the
//     new frames when full (as mangos PUB does; the subscriber sees the
//     gaps), counted in the publisher's Stats().Dropped, per subscriber in
//     [Publisher.SubscriberDrops], and logged; it holds up to queue length
//     frames of up to 8 KiB (batches) or one large message each.
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
// # Constructors and workflow
//
//   - [NewPublisher]: binds (listens) or dials; with [WithDiscovery] it
//     listens on an ephemeral port and advertises itself for the service.
//   - [NewSubscriber]: dials or listens; with [WithDiscovery] it dials every
//     publisher of the service and hangs up when one goes away.
//
// Subscribe with [WithSubscribe] or [Subscriber.Subscribe], then receive with
// [Subscriber.Next], the iterator [Subscriber.All], or the channel
// [Subscriber.C] in a select. [Decode] turns a message into a typed value.
// [Subscriber.Close] drops what is queued; [Subscriber.Drain] hands it over
// first.
package pubsub
