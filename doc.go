// Package spmesh is a brokerless peer-to-peer messaging library: the nanomsg
// scalability protocols (pub/sub, request/reply, pipeline, survey) carried
// directly between Go programs by go.nanomsg.org/mangos/v3 sockets, with
// services found by name through gossip (package discovery) instead of a broker.
//
// This root package holds only the shared vocabulary: errors, [Codec],
// [Header], [Stats] and the [Registry] seam through which the pattern packages
// see discovery. The patterns live in their own packages:
//
//   - pubsub: Publisher, Subscriber. At most once, per-publisher order; a slow
//     subscriber drops, never blocks a publisher, and every drop is visible as a
//     per-publisher sequence gap.
//   - reqrep: Requester, Replier. At least once (resent after a per-attempt
//     timeout or the loss of the connection); [ErrNoPeers] fast when nobody serves.
//   - pipeline: Pusher, Puller (at most once, load balanced, Push blocks for
//     backpressure) and Producer, Worker (at least once, acked, redelivered).
//   - survey: Surveyor, Respondent. One round bounded by a deadline.
//
// Payloads are Go values encoded by a [Codec]: msgpack by default, or raw bytes
// for callers who bring their own encoding.
//
// Every call that can wait takes a context.Context first and returns ctx.Err()
// when it ends. Close is immediate and idempotent; after it every call returns
// [ErrClosed]. Invalid options are rejected at construction with an error
// wrapping [ErrInvalidOption].
package spmesh
