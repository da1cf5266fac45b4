// Package pipeline distributes work over a pool of peers without a broker:
// each message goes to one receiver, the load spread over those ready.
//
// # Traps first
//
// At most once ([Pusher] / [Puller], mangos PUSH/PULL):
//
//   - Lost, not retried: a message is gone when its puller dies or
//     disconnects with it queued or in flight, when a [Puller] closes with it
//     unread, or when a [Pusher] closes with it still queued. Nothing is
//     acknowledged and nothing is resent; Close counts what it drops in
//     Stats().Dropped, the network loses the rest silently. Use the
//     at-least-once half when a lost job matters.
//   - Push blocks: while no puller is connected, and while the Pusher's send
//     queue is full because every puller is busy (backpressure), until its
//     ctx ends. A nil error means "queued", not "received". With
//     [WithNonBlocking], Push fails at once with [spmesh.ErrNoPeers] instead.
//   - Buffering: a Pusher holds up to [WithQueueLen] messages plus a few in
//     the transport; a Puller up to [WithQueueLen] messages its application
//     has not taken, plus one per connection in transit. A slow puller keeps
//     what it holds: load balancing decides only where the next message goes.
//   - Order: messages from one pusher to one puller arrive in the order
//     pushed; across pullers there is no order.
//   - Bad frames (garbage, other kinds, from a non-spmesh peer) are discarded
//     by the Puller and counted in Stats().DecodeErrors.
//
// # Constructors
//
//	NewPusher(opts...)  connector: dials pullers (WithDial, or every puller
//	                    of a service with WithDiscovery); Push, PushHeader
//	NewPuller(opts...)  binder: listens (WithListen, or an ephemeral port
//	                    advertised with WithDiscovery); Next, All, C, Drain
//
// Either side may also listen or dial statically ([Pusher.Listen],
// [Puller.Dial], ...), and start-up order does not matter: dials retry in
// the background.
//
// # Workflow (at most once)
//
//	pl, _ := pipeline.NewPuller(pipeline.WithDiscovery(reg, "thumbnails"))
//	for m, err := range pl.All(ctx) { ... pipeline.Decode[Job](m) ... }
//
//	p, _ := pipeline.NewPusher(pipeline.WithDiscovery(reg, "thumbnails"))
//	err := p.Push(ctx, Job{Image: "cat.jpg"})
//
// # At least once
//
// (Producer / Worker: to be written with that half. It rides on REQ/REP:
// the worker's reply is the ack; redelivery after worker death, ack timeout
// or nack; max attempts, then a dead letter. State its traps here, in the
// same form as above, and list its constructors under Constructors.)
package pipeline
