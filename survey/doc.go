// Package survey asks every peer a question and gathers their answers until
// a deadline, over SP SURVEYOR/RESPONDENT sockets (the Surveyor speaks
// spmesh's own SURVEYOR, the standard wire protocol with counted queues):
// health checks, "who has capacity?", cluster-wide queries.
//
// # What is dropped, what blocks
//
//   - A survey is one round, at most once: it reaches the respondents
//     connected when it is sent (a respondent that connects a moment later
//     never sees it), and is never resent. With nobody connected it runs to
//     its deadline and collects nothing.
//   - A survey ends at its deadline ([WithTimeout], default 1 s; the caller's
//     context deadline when earlier), when its context is cancelled, when
//     [Responses.Close] is called, or as soon as every expected respondent
//     has answered: those given by [WithExpect] or [WithExpectFunc], or else,
//     with [WithDiscovery], the respondents announced for the service at the
//     survey's start. A declined answer counts as an answer.
//     [Responses.Missing] lists the expected that did not answer.
//   - Every answer that arrives is delivered or counted, once. Answers
//     arriving after the end are never delivered, nor mixed into another
//     survey: each survey has its own survey id and queue. They are counted
//     in Stats().Dropped and DroppedLate, however late (any id the Surveyor
//     issued), and so are the stray answers (an unexpected respondent's, a
//     slow one's) to a survey that ended because every expected respondent
//     answered: it stops listening at once. Any other survey, even one
//     ended early by its context, keeps one goroutine and one survey
//     context busy until its deadline plus a late window (as long as the
//     survey lasted, at least 1 s, at most 10 s); the Surveyor reuses idle
//     contexts, so it holds as many as it has had surveys in that state at
//     once. [Responses.Close] releases both within 50 ms: a caller that
//     stops reading a survey should close it. Answers still queued when the
//     Surveyor closes are counted in DroppedClosed.
//   - Each survey buffers up to [WithQueueLen] answers (default 1024) until
//     [Responses.Next] takes them; more are dropped and counted in Dropped
//     and DroppedQueueFull (also those that overflow the protocol's queue
//     of the same size, should a burst outrun the survey's collector).
//   - Frames that fail to decode (a foreign or hostile peer) are counted in
//     Stats().DecodeErrors, on both sides. A Surveyor discards them; a
//     Respondent answers each one that is not a survey (a stock SURVEYOR's
//     raw bytes, say) with an error answer, code [spmesh.CodeDecode], whose
//     message says it is not an spmesh envelope and points to WIRE.md,
//     without calling its handler. Answers with no survey id, or one the
//     Surveyor never issued, are discarded and counted in DecodeErrors.
//   - [Surveyor.Survey] does not wait for answers: it encodes and queues the
//     question (to a peer whose send queue is full, it is dropped, counted in
//     Dropped and DroppedQueueFull) and
//     returns. [Responses.Next] blocks until an answer arrives, the survey
//     ends (an error matching [ErrDone]) or its ctx ends.
//   - [Surveyor.Drain] refuses new surveys at once (an error wrapping
//     [spmesh.ErrClosed]) and blocks until the running surveys end (by any
//     of the ends above; late answers are not waited for), then closes. The
//     answers of those surveys stay readable from their [Responses] (after
//     Close they do not). If its ctx ends first it closes at once: the
//     surveys still running end with [spmesh.ErrClosed].
//   - A [Respondent] runs its [Handler] on [WithConcurrency] surveys at once
//     (default 8); further surveys wait in the socket's queue. A handler
//     error or panic becomes an error answer (a [*spmesh.RemoteError] in
//     [Response.Err]); a panic is logged and the respondent keeps serving.
//     A handler may decline by returning [ErrDeclined]. An answer is always
//     sent, even past the deadline (the surveyor then counts it late),
//     unless the surveyor's connection takes nothing for [WithSendTimeout]
//     (default 2s; a stuck peer): then it is dropped, counted in the
//     respondent's Stats().SendTimeouts and Dropped, and that connection is
//     closed (and redialed). While one handler waits for such a surveyor,
//     its other answers wait at most 250ms, then are dropped without
//     waiting.
//   - Too large: a survey over the Surveyor's own [WithMaxMessageSize] fails
//     with [spmesh.ErrTooLarge]. A question over a respondent's limit is
//     answered, without running the handler, with an error response whose
//     Err matches [spmesh.ErrTooLarge]; an answer over the surveyor's limit
//     (or the respondent's own) arrives the same way, as that respondent's
//     error response. Counted in Stats().TooLarge on both sides. Past 16
//     times the receiver's limit the connection is closed instead.
//   - [Respondent.Close] cancels the handlers' contexts and waits for them
//     to return, at most [HandlerGrace] (1s; a handler still running is
//     counted in [RespondentStats].Abandoned); answers not yet sent are
//     dropped. [Respondent.Drain] lets running handlers finish first.
//
// # Bare frames
//
// With [WithBareFrames] on both sides, questions and answers are the
// codec's bytes alone, no envelope (the survey id stays in the SP header),
// so that NNG, nanomsg and pynng SURVEYOR and RESPONDENT programs
// interoperate. A bare survey still ends at its deadline and counts late
// answers, but carries no headers (refused), no deadline to the
// respondent, no names (a [Response]'s From is the connection's address;
// [WithExpect] and [WithExpectFunc] are refused, so a bare survey runs to
// its deadline), no declines and no remote errors: a bare Respondent whose
// handler fails, panics or declines sends nothing (counted in its Errors,
// Panics or Declined, logged), and a question over its size limit is
// dropped (counted in TooLarge and Dropped) instead of answered with an
// error.
//
// # Tracing
//
// With [WithTracer] a Surveyor starts a client span per survey, ended when
// the survey ends (with an error only when ctx cut it short), and a
// Respondent's handler runs in the server span continuing it (a decline is
// no error). See [spmesh.Tracer].
//
// # Constructors and workflow
//
//   - [NewSurveyor]: usually listens ([WithListen]); with [WithDiscovery] it
//     listens on an ephemeral port and advertises itself for the service.
//   - [NewRespondent]: usually dials the surveyors ([WithDial]); with
//     [WithDiscovery] it dials every surveyor of the service, hangs up
//     when one goes away, and announces its name so that surveyors expect
//     its answer. Each respondent has a name ([WithName]; by default
//     the host name plus a random suffix) that its answers carry.
//
// Call [Surveyor.Survey], then take the answers with [Responses.Next] or the
// iterator [Responses.All]; [spmesh.Decode] turns an answer into a typed value, and
// [Response.From] says who sent it. Several surveys may run at once.
package survey
