// Package otelspmesh traces spmesh messages with OpenTelemetry: it
// implements [spmesh.Tracer], carrying the W3C trace context (traceparent,
// tracestate) in every message's [spmesh.Header] and recording one span
// per message sent and one per message received. It is the only spmesh
// package that imports OpenTelemetry: the core packages do not.
//
// Give the same tracer to every socket of a process with each pattern's
// WithTracer option:
//
//	tr := otelspmesh.NewTracer(otelspmesh.WithTracerProvider(tp))
//	rq, _ := reqrep.NewRequester(reqrep.WithTracer(tr), ...)
//	w, _ := pipeline.NewWorker(h, pipeline.WithTracer(tr), ...)
//
// Spans: a Requester's call and a Surveyor's survey are client spans, a
// Replier's and a Respondent's handler run in the server span continuing
// them; a Producer's job (ended by its ack, dead letter or failure: its
// redeliveries carry the same context), a Publisher's
// publication and a Pusher's push (ended once queued) are producer spans;
// a Worker's handler runs in the consumer span continuing its job, and a
// Subscriber or Puller starts a consumer span per message, ended when the
// message is queued for the application, whose context the message's
// Context method returns (start the spans of its processing from it).
// A span is named after the operation and its destination ("publish
// images.ready", "request resize") and carries the messaging.system,
// messaging.operation.name and messaging.destination.name attributes; an
// error ends it with status Error.
//
// What is dropped: trace context of a message that does not parse (the
// receiver then starts a new trace; nothing fails). Sockets with
// WithBareFrames carry no header, hence no trace context. Nothing blocks
// or is retried here: a resend carries the context of its call.
package otelspmesh
