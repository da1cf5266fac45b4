package spmesh

import "crypto/tls"

// Role names the side of a pattern an endpoint plays. Binders (publisher,
// replier, worker/puller, surveyor) listen and advertise; connectors watch
// the counterpart role and dial every endpoint of it.
type Role string

// The roles advertised by binders.
const (
	RolePublisher Role = "pub"
	RoleReplier   Role = "rep"
	RolePuller    Role = "pull"
	RoleWorker    Role = "work"
	RoleSurveyor  Role = "surveyor"
	// RoleRespondent is announced by survey respondents, which dial rather
	// than listen: their Addr is "name:" followed by the respondent's name,
	// so that surveyors know whom to expect. Nobody dials it.
	RoleRespondent Role = "respondent"
)

// NameAddrPrefix starts the Addr of an endpoint that names a socket instead
// of giving an address to dial (see [RoleRespondent]).
const NameAddrPrefix = "name:"

// Endpoint is one advertised socket: a service, the role it plays there, and
// the address its peers dial.
type Endpoint struct {
	Service string `msgpack:"s"`
	Role    Role   `msgpack:"r"`
	Addr    string `msgpack:"a"` // e.g. tcp://10.0.0.5:7001
	Node    string `msgpack:"-"` // the advertising node, filled in by the registry
	// Bare marks a socket that sends and expects bare SP frames (the
	// application bytes, no spmesh envelope: the patterns' WithBareFrames).
	// A connector wired by discovery dials only the endpoints whose framing
	// matches its own, and counts the others in Stats.EndpointsRefused.
	Bare bool `msgpack:"b,omitempty"`
}

// Registry is the narrow seam between the pattern packages and discovery.
// discovery.Node (gossip) and discovery.Static (a hand-driven list) implement
// it; the patterns never import discovery.
type Registry interface {
	// Advertise publishes ep until withdraw is called.
	Advertise(ep Endpoint) (withdraw func(), err error)
	// Watch reports the endpoints of service in role: first the current set,
	// then the full new set after every change. The channel is owned by the
	// registry and closed after stop is called or the registry closes.
	Watch(service string, role Role) (updates <-chan []Endpoint, stop func(), err error)
	// AdvertiseHost is the host (IP or name) that this node's peers can reach
	// it on; binders listen there when given no address.
	AdvertiseHost() string
}

// TLSPolicy is the transport security a registry imposes on every socket
// wired through it (discovery.Node carries one from its Config), so that one
// configuration secures the gossip and every socket of a node.
type TLSPolicy struct {
	// Server configures the listeners of binders (publisher, replier,
	// worker, puller, surveyor): with it they listen on tls+tcp:// and
	// advertise that. Nil: binders listen on plain tcp://.
	Server *tls.Config
	// Client configures the dials of connectors to tls+tcp:// endpoints.
	Client *tls.Config
	// Require refuses plaintext: connectors never dial an endpoint whose
	// scheme is not tls+tcp:// or wss:// (each refusal counted in
	// Stats.EndpointsRefused and logged), and binders never listen on one.
	Require bool
	// VerifyNode, with mutual TLS, requires the certificate presented at an
	// endpoint to name the member that advertised it (a DNS SAN equal to the
	// member's node name), so that no member can serve another's traffic.
	VerifyNode bool
}

// SecureRegistry is implemented by registries that carry a [TLSPolicy].
// The sockets wired through such a registry apply it.
type SecureRegistry interface {
	Registry
	TLSPolicy() TLSPolicy
}
