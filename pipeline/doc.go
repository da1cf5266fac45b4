// Package pipeline distributes work over a pool of peers without a broker:
// each message goes to one receiver, the load spread over those ready.
//
// # Traps first
//
// At most once ([Pusher] / [Puller], the SP PUSH/PULL wire protocol):
//
//   - Spreading: the Pusher goes round robin over its pullers, skipping
//     those whose send queue is full, so equal pullers get equal shares
//     and a slow or stalled one gets only what its queue holds until it
//     catches up (mangos' own PUSH gave each message to whichever
//     connection was ready first).
//   - Lost, not retried: a message is gone when its puller dies or
//     disconnects with it queued or in flight, when a [Puller] closes with it
//     unread, or when a [Pusher] closes with it still queued. Nothing is
//     acknowledged and nothing is resent; Close counts what it drops in
//     Stats().Dropped, the network loses the rest silently. Use the
//     at-least-once half when a lost job matters.
//   - Push blocks: while no puller is connected, and while the Pusher's send
//     queue for every puller is full (backpressure), until its ctx ends. A nil error means "queued", not "received". With
//     [WithNonBlocking], Push fails at once with [spmesh.ErrNoPeers] instead.
//   - [Pusher.Drain] is the graceful Close: new pushes fail at once (an
//     error wrapping [spmesh.ErrClosed]), the pushes already running go on,
//     and Drain blocks until every queued message has been written to its
//     puller's connection, or its ctx ends: then it closes at once, drops
//     what is still queued (counted in Dropped and DroppedClosed) and
//     returns ctx's error.
//   - Buffering: a Pusher holds up to [WithQueueLen] messages (and 16 MiB)
//     per connected puller, plus what the transport buffers; what is queued for a puller that goes away is lost and
//     counted in Stats().Dropped; a Puller up to [WithQueueLen] messages and
//     [WithQueueBytes] bytes (default 16 MiB) its application has not taken,
//     then stops reading: its socket queue holds up to about as many bytes
//     more (max(2, WithQueueBytes/WithMaxMessageSize) frames), plus one frame
//     per connection in transit; past that its pushers block. A slow puller keeps
//     what it holds: load balancing decides only where the next message goes.
//     Bodies of up to 512 bytes are copied into shared 4 KiB blocks, so a
//     [Message] the application keeps holds its block (at most 4 KiB) alive.
//   - Order: messages from one pusher to one puller arrive in the order
//     pushed; across pullers there is no order.
//   - Bad frames (garbage, other kinds, from a non-spmesh peer) are discarded
//     by the Puller and counted in Stats().DecodeErrors. A puller sends
//     nothing: any frame a Pusher receives from one (bare or not) is
//     discarded, counted in DecodeErrors, and its connection kept.
//   - Bare frames ([WithBareFrames], Pusher and Puller only): each message
//     is one frame holding exactly the codec's bytes, no envelope, to talk
//     to unmodified NNG, nanomsg or pynng PUSH/PULL programs. Spreading,
//     blocking, buffering, limits and drops are as above (a frame over the
//     Puller's limit is dropped, counted in TooLarge and Dropped). Lost:
//     headers (PushHeader with headers fails, naming bare frames), message
//     ids (zero) and the sender's time (Message.Time is when it arrived);
//     every frame is a message, so nothing counts as a DecodeError. Both
//     ends must be bare, and with [WithDiscovery] they are: a bare Pusher
//     dials only bare pullers, an enveloped one only enveloped pullers
//     (the others counted in Stats().EndpointsRefused). The Producer and
//     Worker refuse it: at-least-once needs the envelope's ids and acks.
//
// # Tracing
//
// With [WithTracer] a Producer starts one producer span per job (ended by
// its ack, its dead letter or its failure: redeliveries after a nack, an
// ack timeout or a lost worker are within it and carry its trace context)
// and a Worker's handler runs in the consumer span continuing it. With an
// outbox the job's headers are stored with that trace context, and a job
// recovered after a restart hands them to the tracer's Send again (whether
// its new span joins the old trace is the tracer's choice: the headers are
// its only link to it). A Pusher's push is a producer span ended once
// queued, and a Puller's [Message.Context] carries the consumer span. See
// [spmesh.Tracer].
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
//	for m, err := range pl.All(ctx) { ... spmesh.Decode[Job](m) ... }
//
//	p, _ := pipeline.NewPusher(pipeline.WithDiscovery(reg, "thumbnails"))
//	err := p.Push(ctx, Job{Image: "cat.jpg"})
//
// # Traps first: at least once
//
// [Producer] / [Worker] speak SP REQ/REP with spmesh's own dispatcher
// (shared with package reqrep, not built on its API): a job is a request,
// the worker's reply is its ack, and the Producer chooses each job's
// worker.
//
//   - Duplicates: a job is delivered again when its worker fails it (the
//     handler returned an error or panicked: a nack), does not ack it within
//     [WithAckTimeout] (default 30s; a hung or merely slow worker: its
//     handler keeps running), or its connection drops (worker killed,
//     closed, or drained with the job still queued). The earlier delivery
//     may have done the work, so a job can run more than once. Every
//     delivery carries the same [Job.ID] and a growing [Job.Attempt]; a
//     Worker given [WithDedup] acks an id it acked lately without running
//     it again, but only its own: nothing is shared between workers (a
//     job without an id, all zero bytes, is never de-duplicated).
//   - Dead letter, never silently dropped: after [WithMaxAttempts]
//     deliveries (default 5; 0 means unbounded, as in reqrep: the job is
//     delivered until acked or its ctx ends) the job goes to the function given with
//     [WithDeadLetter] (default: logged at level Error, and the logger is
//     silent by default), is counted in Stats().DeadLettered, and its
//     Produce or [Result] fails with an error wrapping [ErrDeadLetter].
//   - Other ends, not retried: a job whose ctx ends, whose Producer closes
//     ([spmesh.ErrClosed]; Close lists such jobs in an [*UnackedError]), or
//     that has no worker to go to ([spmesh.ErrNoPeers], see below) fails
//     with that error, counted in Stats().Failed. The caller decides.
//   - What blocks: Produce until the ack (or one of the ends above);
//     Produce and ProduceAsync while [WithMaxInFlight] jobs (default 64)
//     are in flight. With no worker connected they fail at once with
//     [spmesh.ErrNoPeers]. A job whose worker is lost while no other is
//     connected waits for one to redeliver to, for the ack timeout (or,
//     without one, twice the longest redial interval: 4 s by default), then
//     fails with [spmesh.ErrNoPeers]; [WithWaitForWorker] waits for a
//     worker instead, until the job's ctx ends.
//   - ctx: the ctx given to Produce or ProduceAsync bounds the whole job,
//     every delivery included, and its deadline travels to the worker, whose
//     handler ctx ends at the same instant (clocks must agree). For
//     ProduceAsync, use a ctx that lives as long as the job should.
//   - Load and credit: the Producer chooses each job's worker: the one with
//     the fewest of its jobs in flight, among those below their credit,
//     ties round robin. A worker's credit is how many jobs it takes at once
//     from one producer; it announces it in every ack (twice its
//     [WithConcurrency], default 8, so that a job waits ready for each
//     handler; [WithCredit] sets another), together with the number of
//     jobs it is running for all its producers. A worker shared by several
//     producers is given by each no more than its credit less what it runs
//     for the others (its report less this producer's own jobs in flight
//     there, never below zero), and always at least one job, so that a
//     busy worker is still probed and its next ack says when it has room.
//     So equal workers get equal shares, a worker 4x slower gets about a
//     quarter of a fast one's share, a worker kept busy by another
//     producer gets fewer, and a worker that joins a busy pipeline gets jobs
//     as soon as it is connected. Until a worker's first ack, and for
//     foreign workers that announce nothing, the Producer assumes a credit
//     of twice [DefaultConcurrency]. While every worker is at its credit,
//     jobs wait at the Producer (within [WithMaxInFlight]); a job sent
//     waits at its worker at most behind one job per handler, its ack timer
//     running. A job nacked by one worker, or whose delivery timed out or
//     was lost, is delivered again to another worker when one has room.
//     Stats().PerPeer shows each worker's credit, jobs in flight, done and
//     failed, and what it last said it runs for other producers (Others).
//   - Order: none. Jobs run concurrently and redeliveries overtake.
//   - Too large: a job over the Producer's own [WithMaxMessageSize] fails at
//     once with [spmesh.ErrTooLarge]. A job over a Worker's limit is
//     discarded as it arrives and nacked with [spmesh.CodeTooLarge] without
//     running the handler; the job is dead-lettered at once (its error
//     matches both [ErrDeadLetter] and [spmesh.ErrTooLarge]), not delivered
//     again. Counted in Stats().TooLarge on both sides.
//   - Slow producers: an ack waits at most [WithSendTimeout] (default 2s)
//     for a producer that does not read it; then it is dropped, counted in
//     the Worker's Stats().SendTimeouts, and that connection is closed (the
//     producer delivers the job again). While one handler waits for such a
//     producer, its other acks wait at most 250ms, then are dropped without
//     waiting.
//   - Close: [Worker.Close] cancels the handlers' contexts and waits at most
//     [HandlerGrace] (1s) for them; a handler that ignores its ctx goes on
//     running in the background (its ack is never sent, so the job is
//     delivered again), logged and counted in [WorkerStats].Abandoned.
//   - Wire: Producer and Worker speak jobs and acks (WIRE.md, kinds 5 and
//     6), so they neither serve nor call reqrep peers (a request is nacked
//     as not decodable, a job answered by a Replier fails with
//     [spmesh.ErrDecode]), and Pushers and Pullers never mix with them
//     (different protocols and roles). A job from a foreign producer that
//     carries no attempt number is [Job.Attempt] 1; every ack, a refusal
//     for size (code -2) included, carries the worker's credit.
//
// # Durable: the outbox
//
// Without an outbox, a Producer holds its unacked jobs in memory: a
// producer process that dies (SIGKILL, OOM, reboot) loses every job it
// accepted and had not seen acked. [WithOutbox] (path) keeps them in a
// crash-safe file (bbolt: a single file, ACID transactions, fsync on
// commit, an exclusive file lock), with no broker:
//
//   - Durable before accepted: Submit, ProduceAsync and Produce return a
//     job as accepted only once it is written and fsynced. Jobs submitted
//     concurrently share one commit (one fsync): group commit.
//   - Or fsynced every interval: [WithOutboxSync] (interval) is NATS
//     JetStream's default file-store model (its sync_interval, 2 minutes):
//     a job is accepted once its commit has written it to the file (the
//     OS's page cache; bbolt's NoSync), and the file is fsynced every
//     interval (when something changed) and at Drain and Close. What a
//     crash loses, per mode: a process crash (SIGKILL, OOM, panic) loses no
//     accepted job in either mode, since the OS still holds the written
//     pages (the chaos tests below run in both modes). A host crash or
//     power loss loses nothing with an fsync per commit; with an interval
//     it can lose the jobs accepted since the last fsync (up to interval of
//     them), and, since bbolt orders its page and meta writes only by
//     fsync, it can leave the file corrupt, so that NewProducer fails with
//     [ErrOutbox] and every job in it is lost (JetStream's file store keeps
//     its older messages then). A failed periodic fsync is logged; the one
//     at Close is returned by Close.
//   - At least once across producer crashes: a Producer opened on the same
//     path sends every job left there again, with its id, headers and body,
//     before any new job (Submit waits for them to be in flight);
//     Stats().Recovered counts them and an Info log says so. The stored
//     attempt number goes up by one at each reopen, so [Job.Attempt] > 1
//     tells the worker it may be a duplicate (deliveries within one run are
//     not written, to spare an fsync each); each run gives a recovered job
//     [WithMaxAttempts] more deliveries, since a restart is not a failed
//     delivery. A recovered job has no ctx deadline (its caller is gone);
//     it ends when acked, dead-lettered, or left again by Close.
//   - Removed: a job is deleted once acked, dead-lettered, or abandoned by
//     its caller (its ctx ended: the caller got the error). A job cut short
//     by Close stays and is sent by the next Producer on the path. Deletes
//     ride on the next commit; one lost in a crash means the job is sent
//     again.
//   - Duplicates: possible, as without an outbox, and more so across a crash
//     (a job acked just before the crash, its delete not yet committed, is
//     sent again). Effectively once = [WithDedup] on the workers (the id
//     survives the restart) + an idempotent handler, since the dedup window
//     is per worker and bounded.
//   - Blocks: while the outbox holds [WithOutboxLimit] jobs or bytes
//     (defaults [DefaultOutboxJobs], [DefaultOutboxBytes]) Submit waits for
//     room until its ctx ends; [WithOutboxFailFast] makes it fail at once
//     with [ErrOutboxFull] instead. A delivery whose worker is lost waits for
//     another (as with [WithWaitForWorker]). Submit still fails at once with
//     [spmesh.ErrNoPeers] when no worker is connected, unless
//     [WithWaitForWorker]: give it to accept jobs while no worker runs.
//   - Refused at open: a path held by another Producer (in this process or
//     another: the lock is waited for 500ms), or a file that is corrupt or not
//     bbolt, fails NewProducer with an error wrapping [ErrOutbox]; an existing
//     file is checked page by page (bbolt's consistency check) before it is
//     opened for writing.
//   - Not covered: the loss of the disk or of the host (the outbox is one
//     local file; no replica), a second host taking over the jobs, and a
//     filesystem or disk that lies about fsync.
//   - Cost: throughput is commits per second times the jobs per commit,
//     and a job waits in its window slot for its commit, so the batch (and
//     the throughput) grows with [WithMaxInFlight] and the number of
//     goroutines submitting. Each fsync'd commit is 2 fdatasyncs (bbolt
//     writes the pages, fsyncs, then the meta page, fsyncs: the order that
//     keeps the file whole on power loss). Acked jobs' deletes wait up to
//     20ms to ride on a commit of new jobs rather than pay for their own,
//     and the writer yields once before each commit so that the submitters
//     the last commit released join the next. Measured (BenchmarkOutbox,
//     strace -f -c -e trace=fdatasync): one submitter, 1 job per commit (2
//     fdatasyncs per job); 64 submitters, about 40 jobs per commit (0.05
//     fdatasyncs per job). Against NATS JetStream file storage on a VM
//     disk, same run (bench/RESULTS.md, "cd bench && go run . -only
//     durable2 -runs 3"): with the same promise, fsync before accepted, 14x
//     to 38x JetStream with sync_always; fsync every 2 minutes
//     ([WithOutboxSync]), 0.5x to 1.4x (median 0.95x) JetStream's default
//     file storage on a loaded machine; fsync per commit against
//     JetStream's default, 0.25x to 0.8x (a different promise: JetStream
//     acks before it fsyncs).
//   - Chaos (outbox_chaos_test.go; SPMESH_CHAOS_FULL=1 for the full size),
//     in both fsync modes: 10,000 jobs, the producer process SIGKILLed 10
//     times and the worker processes 5 times: every job reported accepted
//     ran, with 64 to 152 duplicates per run (fsync per commit) and 204 to
//     486 (periodic fsync, more jobs in flight at each kill); 50 kills
//     during group commits: the store opened every time and no accepted job
//     was missing (5 runs each).
//
// # Constructors: at least once
//
//	NewProducer(opts...)      connector: dials workers (WithDial, or every
//	                          worker of a service with WithDiscovery);
//	                          Produce, ProduceHeader (headers),
//	                          ProduceAsync, Submit (a Task: id and
//	                          headers), Drain, Close
//	NewWorker(handler, opts...) binder: listens (WithListen, or advertised
//	                          with WithDiscovery); runs handler (Handler,
//	                          HandlerFunc, TypedHandler); Drain, Close
//
// # Workflow (at least once)
//
//	w, _ := pipeline.NewWorker(pipeline.TypedHandler(
//		func(ctx context.Context, job *pipeline.Job, r Resize) error {
//			return makeThumb(ctx, r) // nil acks, an error nacks
//		}), pipeline.WithDiscovery(reg, "thumbnails"), pipeline.WithDedup(10000, time.Hour))
//	defer w.Drain(ctx)
//
//	p, _ := pipeline.NewProducer(pipeline.WithDiscovery(reg, "thumbnails"),
//		pipeline.WithWaitForWorker(), pipeline.WithDeadLetter(park))
//	r, err := p.ProduceAsync(ctx, Resize{Image: "cat.jpg"})
//	...
//	err = r.Wait(ctx) // nil: acked
package pipeline
