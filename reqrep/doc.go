// Package reqrep is request/reply over SP REQ/REP (mangos): a [Requester] sends a
// request to one of the connected [Replier]s and waits for its answer; a
// Replier serves requests with a [Handler], many at once.
//
// # Traps first
//
//   - At least once: a request is resent when the connection carrying it
//     drops (a replier killed mid-request) and, with [WithAttemptTimeout],
//     when an attempt gets no reply in time. The first attempt may have been
//     handled already, so a request can be handled twice (or more). Every
//     attempt carries the same [Request.ID] and a growing [Request.Attempt]:
//     handlers whose work is not idempotent de-duplicate on the ID. A reply
//     to an earlier attempt that arrives after a resend is dropped.
//   - No replier, no wait: with nobody connected, a call fails at once with
//     [spmesh.ErrNoPeers] (like NATS's no-responders); this includes the
//     moment right after Dial, before the connection is up. A request
//     already under way whose connection drops when it was the last one
//     waits for a replier to resend to, for the attempt timeout if there
//     is one, else twice the longest redial interval (4 s by default, at
//     least 1 s), then fails with [spmesh.ErrNoPeers]: a replier that hangs
//     up on a requester whose replies back up (see
//     [spmesh.Stats].SendTimeouts) is redialled and the call goes on.
//     [WithWaitForReplier] waits for a replier instead, until the caller's
//     ctx ends.
//   - What blocks: Request blocks until the reply, the caller's ctx, or the
//     attempts run out ([WithMaxAttempts]: unbounded by default, 0); before sending, while every
//     replier is at its credit (see Load). Without a ctx deadline and
//     without an attempt timeout, a replier that hangs holds the call for
//     as long as its connection lives.
//   - Deadlines travel: the caller's ctx deadline is sent with the request
//     and the handler's ctx ends at that same instant, so abandoned work
//     stops. It is wall-clock time: hosts need synchronised clocks (NTP).
//     Cancelling a ctx without a deadline is not sent. A request that
//     arrives after its deadline is answered with an error and its handler
//     is not called.
//   - Load and credit: the Requester chooses each request's replier: the
//     one with the fewest of its requests outstanding, among those below
//     their credit, ties round robin. So sequential calls spread evenly over
//     idle repliers, a replier that just connected gets requests at once,
//     and a slow one gets fewer. A replier's credit is how many requests
//     one requester may have outstanding with it: it announces it in every
//     reply (default twice its concurrency, [WithConcurrency], so that a
//     request waits ready for each handler; set with [WithCredit]); until
//     the first reply, and for foreign SP repliers that announce nothing,
//     the Requester assumes [WithPeerCredit] (default twice
//     [DefaultConcurrency]). While every replier is at its credit,
//     a call waits at the Requester (until its ctx ends) for the first
//     replier with room. A resend after an attempt timeout or a lost
//     connection, and a caller's own retry of a failed call (same
//     [Call.ID], next [Call.Attempt]), go to another replier when one has
//     room. Stats().PerPeer shows each replier's credit, requests in
//     flight, done and failed. A Replier does not report how many
//     requests it runs for other requesters (a pipeline Worker does), so
//     requesters sharing repliers each count only their own requests.
//   - Limits: a request over the Requester's own [WithMaxMessageSize] fails
//     at once with [spmesh.ErrTooLarge], before it is encoded when its size
//     is known ([]byte, string). A request over the Replier's limit is read
//     and discarded as it arrives (over spmesh's TCP transport, up to 16
//     times the limit) and answered with an error carrying
//     [spmesh.CodeTooLarge], without calling the handler: the call fails at
//     once with an error that errors.Is [spmesh.ErrTooLarge], and is not
//     resent. A reply over the Requester's limit, or over the Replier's own
//     limit, fails the call the same way. Every refusal is counted in
//     Stats().TooLarge, on both sides. A frame further past the receiver's
//     limit (or over mangos' stock transport) closes the connection, and
//     the request is resent: give both sides the same limit.
//   - Slow callers: a reply waits at most [WithSendTimeout] (default 2s) for
//     a requester that does not read it; then it is dropped, counted in the
//     Replier's Stats().SendTimeouts (and Dropped), and that connection is
//     closed (a Requester resends what it has no answer to). While one
//     handler waits for such a requester, its other replies wait at most
//     250ms, then are dropped without waiting: one requester that stops
//     reading holds one handler for the send timeout and others for at most
//     250ms, once per connection, and never delays the replies to others.
//   - Errors: a handler error reaches the caller as a [*spmesh.RemoteError]
//     with the error's text and its code ([spmesh.Coder], [spmesh.Errorf]);
//     a handler panic is recovered, logged, and reported with code
//     [spmesh.CodePanic]; the replier keeps serving. Remote errors are not
//     retried. Frames that are not requests are counted and answered with
//     an error that says so ("not an spmesh envelope ...; see WIRE.md").
//   - Bare frames ([WithBareFrames], both ends): bodies are exactly the
//     application bytes, no envelope, so unmodified NNG, nanomsg and pynng
//     REQ/REP programs interoperate. Lost: headers (a call with headers
//     fails; reply headers are dropped), deadlines, ids and attempts (no
//     de-duplication across resends), remote errors: a bare Replier whose
//     handler fails sends nothing (counted in HandlerErrors, logged) and the
//     caller times out or resends. Kept: SP request ids, resends, credit
//     (every bare replier has [WithPeerCredit]).
//   - [Requester.Drain] refuses new calls at once (an error wrapping
//     [spmesh.ErrClosed]), blocks until the calls in progress end (reply,
//     error or their own ctx; resends go on meanwhile), then closes; if its
//     ctx ends first it closes at once, the calls still running return
//     [spmesh.ErrClosed], and it returns ctx's error.
//   - Drain and Close: [Replier.Drain] stops taking requests, finishes those
//     in hand, then closes; requests queued at the replier but not taken are
//     resent by their callers when the connections close. [Replier.Close]
//     cancels the running handlers' contexts and waits for them to return,
//     at most [HandlerGrace] (1s): a handler that ignores its ctx goes on
//     running in the background (its reply is never sent), logged and
//     counted in [ReplierStats].Abandoned.
//
// # Tracing
//
// With [WithTracer] a Requester starts one client span per call (resends
// carry the same context) and a Replier's handler runs in the server span
// continuing it. See [spmesh.Tracer].
//
// The dispatcher (credits, resends, the serving side) is spmesh's own and
// shared with the pipeline's Producer and Worker, which speak jobs and
// acks instead: a Requester and a Worker, or a Producer and a Replier,
// refuse each other's frames (ErrDecode).
//
// # Constructors
//
//   - [NewRequester](opts...): the calling side. [Requester.Request],
//     [Requester.RequestHeader], the typed [Ask], and [Requester.Do] for full
//     control over ID, attempts and timeouts.
//   - [NewReplier](handler, opts...): the serving side, with [HandlerFunc]
//     and the typed [TypedHandler] adapters.
//
// Wiring is static ([WithListen], [WithDial], or the Listen and Dial
// methods) or by service name through a registry ([WithDiscovery]): a
// Replier listens and advertises, a Requester dials every advertised
// replier. Either side may listen or dial.
//
// # Workflow
//
//	rep, _ := reqrep.NewReplier(reqrep.TypedHandler(
//		func(ctx context.Context, req *reqrep.Request, in Resize) (Thumb, error) {
//			return makeThumb(ctx, in)
//		}), reqrep.WithListen("tcp://0.0.0.0:7001"))
//	defer rep.Close()
//
//	rq, _ := reqrep.NewRequester(reqrep.WithDial("tcp://10.0.0.5:7001"))
//	defer rq.Close()
//	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
//	defer cancel()
//	thumb, err := reqrep.Ask[Thumb](ctx, rq, Resize{ID: 42, Width: 128})
package reqrep
