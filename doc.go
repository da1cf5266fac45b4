// Package spmesh is a brokerless peer-to-peer messaging library: the nanomsg
// scalability protocols (pub/sub, request/reply, pipeline, survey) carried
// directly between Go programs by go.nanomsg.org/mangos/v3 sockets, with
// services found by name through gossip (package discovery) instead of a broker.
//
// This root package holds only the shared vocabulary: errors, [Codec] and
// [Decode], [Header], [ID], [Stats] and the [Registry] seam through which
// the pattern packages see discovery. The patterns live in their own packages:
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
// # Bodies from the network
//
// Every body a peer sends is hostile until checked. [Msgpack] checks a body
// in one pass before decoding it ([CheckMsgpack]): a str, bin or ext length,
// or an array or map count (at one byte per element, two per map pair),
// larger than the bytes that remain, nesting deeper than 256 levels
// ([DefaultMsgpackDepth]; [NewMsgpack] sets another limit), a truncated
// value or bytes after it fail with an error wrapping [ErrDecode], before
// anything is allocated. A handler that returns that error (as the typed
// handlers do) sends its caller a remote error with [CodeDecode], for which
// errors.Is(err, ErrDecode) holds too. A body holding an ext is also
// checked against the type it is decoded into: an ext (a timestamp, say)
// where the type has a map is refused, since msgpack would read its bytes
// as a map of any claimed size. The envelope around the body is checked
// the same way, and carries at most 1,024 user headers.
//
// Traps:
//   - After the check, the elements of all arrays and maps in a body number
//     at most its length, but msgpack allocates each at the size of the type
//     it decodes into: a body of N one-byte nils decoded into []T allocates
//     2*N*sizeof(T) (msgpack makes a typed slice, then copies it), into any
//     N*16 bytes. Measured for one 8 MiB body (the default size limit):
//     128 MiB into any or []int64, 384 MiB into a slice of 24-byte structs
//     (and by the same rule 8 GiB into 512-byte structs). Decode bodies
//     from untrusted peers into types with small elements, or check
//     len(data) first, and bound the message size (WithMaxMessageSize in
//     each pattern package).
//   - Encoding a value with a cycle through a map, slice or struct returns
//     an error from Marshal (and so from Publish, Request, Push, Produce,
//     Survey) once its encoding passes 64 KiB. A cycle only through pointers
//     and interfaces (var x any; x = &x) writes nothing while msgpack
//     recurses and still overflows the stack, which ends the process.
//   - A custom [Codec] gets the same hostile bytes: it must bound what it
//     allocates by len(data). One that decodes msgpack by other means calls
//     [CheckMsgpack] first; one for another format needs its own check.
//
// # Logging
//
// Every socket (each pattern package's WithLogger) and discovery
// (Config.Logger) log to a *slog.Logger, silent by default, with one
// scheme. Messages start with "spmesh: " ("spmesh: discovery: ",
// "spmesh: memberlist: "). spmesh adds no "component" or other source
// attribute, so a logger that carries its own never sees a key twice; the
// prefix says where a line comes from. Levels:
//
//	Debug  per message: a resend, a nack, a bad survey answered
//	Info   lifecycle: joined, jobs recovered from an outbox
//	Warn   a peer's traffic refused or dropped (handshake, size limit,
//	       connection cap, bad frame, slow peer, refused endpoint or
//	       member), a setting that weakens security, a retried failure
//	Error  spmesh's own failures (panic recovered, fsync failed) and
//	       lost work (a job dead-lettered with no dead-letter function)
//
// Attribute keys, one meaning each:
//
//	remote      a peer's network address (host:port)
//	node        a peer's node name (discovery member)
//	endpoint    an advertised endpoint's address
//	service     a service name
//	role        a role (rep, pub, ...)
//	id          a message or job id
//	err         the error
//	reason      why a thing was refused, when not an error
//	path        a file (outbox)
//	suppressed  lines of this kind for this peer not logged since the last
//
// Every Warn about a peer's traffic goes through one limiter per socket
// (per node in discovery): at most one line per kind per peer (its host:
// a peer reconnecting from new ports is the same peer) per 10 s; the next
// line after that carries suppressed=N. The counters in [Stats] count
// every one. At most 1024 peers are remembered; past that, the others
// share one line per kind per interval.
//
// # Stats
//
// Every socket type has a Stats method. The ten return [Stats] (Publisher,
// Pusher, Puller) or a struct embedding it with the figures of their
// pattern; a name means the same thing wherever it appears (the types
// column says where a figure can be non-zero):
//
//	field               what it counts                                           types
//	Sent                messages handed to the transport (Requester, Producer:   all
//	                    attempts; Surveyor: surveys; servers: replies, acks)
//	Received            messages delivered to the application (Requester:       all
//	                    replies; Producer: acks and nacks)
//	Resent              retransmissions: requests resent, jobs redelivered       all
//	DecodeErrors        frames or payloads discarded undecoded                   all
//	Peers               connections established                                  all
//	BytesSent/Received  frame bodies written to / read from connections          all
//	Draining            Drain was called: no new work taken                      all
//	Dropped             messages known lost: the sum of the seven causes below   all
//	 DroppedQueueFull   a queue was full (publisher's per subscriber, a          all
//	                    receive queue, a survey's answer queue)
//	 DroppedClosed      its connection or socket closed while it was queued      all
//	 DroppedTooLarge    received over the size limit (also in TooLarge)          all
//	 DroppedSendTimeout a reply, ack or answer the peer did not take in time     all
//	                    (also in SendTimeouts)
//	 DroppedExpired     a request or job that arrived past its deadline          Replier, Worker
//	 DroppedGap         holes in a publisher's sequence numbers                  Subscriber
//	 DroppedLate        answers after their survey ended                         Surveyor
//	TooLarge            messages refused for size, sent or received              all
//	SendTimeouts        replies, acks, answers not taken in time; stalled        all
//	                    subscribers cut off
//	ConnsRefused        connections refused at the connection cap                all
//	ConnTimeouts        connections closed on a frame or idle timeout            all
//	HandshakeErrors     failed SP or TLS handshakes                              all
//	EndpointsRefused    discovered endpoints refused (security policy, framing)  all
//	LastError           the last connection-level error, with the peer           all
//	InFlight            handlers running (Replier, Worker, Respondent); calls    Requester, Replier, Producer,
//	                    or jobs outstanding (Requester, Producer); surveys       Worker, Surveyor, Respondent
//	                    open (Surveyor)
//	HandlerErrors       this socket's own handler failed or panicked             Replier, Worker, Respondent
//	Panics              of which: recovered panics                               Replier, Worker, Respondent
//	Abandoned           handlers still running when Close stopped waiting        Replier, Worker, Respondent
//	RemoteErrors        replies carrying the peer's handler error (Producer:     Requester, Producer
//	                    nacks)
//	Timeouts            attempts or deliveries unanswered within their timeout   Requester, Producer
//	Lost                attempts or deliveries whose connection dropped          Requester, Producer
//	PerPeer             the dispatch counters of each connected peer             Requester, Producer
//	ReplyTime           send to reply, ack or in-time answer ([Histogram])       Requester, Producer, Surveyor
//	Acked               jobs acked                                               Producer, Worker
//	Produced, DeadLettered, Failed, Recovered: jobs accepted, out of attempts,   Producer
//	                    ended otherwise unacked, resent from the outbox
//	Duplicates          deliveries acked from the dedup window                   Worker
//	Declined            answers that declined                                    Respondent
//	Publishers          per publisher: messages received and gaps                Subscriber
//
// Every drop the library makes is in Dropped and in exactly one of its
// causes; a refusal that is not a message lost (a send refused for size,
// a connection refused) has its own counter. Package metrics exports each
// field under one Prometheus name.
//
// # Tracing
//
// [Tracer] is the hook through which every pattern reports the messages it
// sends and receives and carries trace context in their [Header]; each
// pattern package's WithTracer option sets it. No core package implements
// or imports a tracing system: package otelspmesh implements it with
// OpenTelemetry and the W3C trace context (traceparent, tracestate).
// Without a tracer nothing is called, nothing is added to headers and
// nothing is allocated. Bare frames (WithBareFrames) carry no headers, so no
// trace context.
//
// Every call that can wait takes a context.Context first and returns ctx.Err()
// when it ends. Close is immediate and idempotent; after it every call returns
// [ErrClosed]. Invalid options are rejected at construction with an error
// wrapping [ErrInvalidOption].
package spmesh
