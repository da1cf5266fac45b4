package spmesh

import "context"

// Tracer is the hook through which a socket reports the messages it sends
// and receives to a tracing system, and carries trace context in their
// [Header]. The core packages implement none: package
// github.com/spmesh/spmesh/otelspmesh implements it with OpenTelemetry and
// the W3C trace context (traceparent, tracestate). A socket without a
// tracer (the default) calls nothing and adds nothing to headers.
//
// op is one of the Trace* operations below; dest names where the message
// goes: the service (WithDiscovery's name, "" without discovery) or, for a
// publication, its topic. A tracer is called from many goroutines at once,
// and must not block.
type Tracer interface {
	// Send is called once per message before it is encoded (once per call
	// of Request, not per resend). It returns the context of the send (a
	// span started from ctx), the header to send (h with the trace context
	// added; h itself, which may be nil or shared by the caller, must not
	// be modified: return a copy) and a function the socket calls once
	// with the outcome of the send (for a request: of the round trip).
	Send(ctx context.Context, op, dest string, h Header) (context.Context, Header, func(error))
	// Receive is called once per message received, before the handler or
	// the delivery to the application, with the message's header (nil
	// when it has none; read only). It returns the context the handler
	// runs in (or the message carries) and a function the socket calls
	// once the handler returned (at once for a delivery to a queue).
	Receive(ctx context.Context, op, dest string, h Header) (context.Context, func(error))
}

// Operations passed to a [Tracer]: the pattern a message belongs to. The
// request, survey and job operations have an answer (client and server
// spans, the sender's ending with the reply, ack or end of the survey);
// publish and push are one way (producer and consumer spans).
const (
	TraceRequest = "request" // Requester -> Replier
	TraceJob     = "job"     // Producer -> Worker
	TraceSurvey  = "survey"  // Surveyor -> Respondent
	TracePublish = "publish" // Publisher -> Subscriber
	TracePush    = "push"    // Pusher -> Puller
)
