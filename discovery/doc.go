// Package discovery finds spmesh peers by service name, with no broker and
// no address lists: [Node] gossips over SWIM (hashicorp/memberlist), and
// [Static] is a hand-driven list for tests and fixed deployments. Both
// implement [spmesh.Registry], the seam every pattern package wires through
// (WithDiscovery(reg, service)).
//
// Traps, first:
//   - What is dropped: events that do not fit the [Node.Events] buffer
//     (counted by [Node.DroppedEvents]); watch snapshots a slow reader has
//     not taken yet (replaced by the latest: a watcher always ends up with
//     the current set, not every step).
//   - What blocks: nothing on the gossip path. [New] does not wait for its
//     seeds; [Node.Join] and [Node.Leave] wait, bounded by their context
//     and Config.TCPTimeout / Config.LeaveTimeout. [Node.Close] returns at
//     once, aborting joins and fetches in flight.
//   - What is retried: joining the seeds (every Config.RejoinInterval until
//     one answers, and then forever, together with peers that failed within
//     Config.RejoinWindow, with a backoff, so a mesh split for longer than
//     Config.DeadTimeout merges again); pulling a member's records until
//     it answers (every ProbeInterval/2, at least 100 ms).
//   - What is refused: see below; every refusal has a counter in
//     [Node.Stats] and a warning in Config.Logger, at most one per kind per
//     peer per 10 s (the next one carries "suppressed", the count not
//     logged in between).
//   - A peer that dies is dropped after failure detection (about
//     SuspicionMult * ProbeInterval); one that calls Leave is dropped at once.
//   - Names must be unique. A node restarted under the same name on a new
//     address is accepted once the old one is declared dead and
//     Config.ReclaimAfter has passed (before that, the newcomer is refused
//     and logged as a conflict, and retried by the re-join loop).
//   - Past [MaxEndpoints] endpoints Advertise fails with
//     spmesh.ErrTooLarge; nothing is truncated. This node's own endpoints
//     are not checked like remote ones (it may advertise inproc:// for its
//     own process), but ipc:// and inproc:// ones are never sent to others.
//   - Gossip encryption must be configured at start (Config.SecretKey);
//     keys then rotate with [Node.InstallKey], [Node.UseKey] and
//     [Node.RemoveKey], on every node (the keyring is not gossiped). A node
//     without a key logs a warning at start: anyone who reaches its gossip
//     port can join and advertise.
//   - A node learns another's endpoints only from that node (see below), and
//     only those of services it uses: watched, asked for with
//     [Node.Endpoints], or all after [Node.Members] or [Node.Events]. A
//     new Watch may first report an empty set, then the endpoints once
//     pulled (a TCP round trip).
//   - Bare endpoints (spmesh.Endpoint.Bare, from a socket with
//     WithBareFrames) are listed together with the enveloped ones of their
//     service and role: Watch and Endpoints report both, and each connector
//     dials only those of its own framing (the others are counted in its
//     Stats.EndpointsRefused). In the records a bare endpoint's role travels
//     as role+"+bare", which nodes of earlier versions never watch; roles
//     ending in "+bare" cannot be advertised (ErrInvalidOption).
//
// # What a member can and cannot make others do
//
// Endpoints never travel in gossip. A node's gossiped metadata is a
// digest (a version number and service hints); whoever uses one of its
// services pulls its records over TCP from the node's own gossip address.
// So a member cannot:
//   - advertise in another node's name: records whose name is not the node
//     they were pulled from are refused, and records pushed in messages or
//     push/pull state (from any sender) are never taken (counted in
//     [Stats].RecordsRefused). With Config.TLS the pull runs over TLS, and
//     with TLS.VerifyNode the member's certificate must name it (a DNS SAN
//     equal to its node name); with a gossip key the pull is sealed with it
//     (AES-GCM); the cluster label must match.
//   - make others dial something that is not its own network endpoint: an
//     endpoint from another member is listed only with a tcp://,
//     tls+tcp://, ws:// or wss:// address (never ipc:// or inproc://,
//     which name something on the dialer's host), an IP host (no names)
//     equal to the member's gossip IP or inside Config.EndpointCIDRs
//     (default: none), a port 1-65535, and never an unspecified,
//     link-local (169.254.0.0/16, fe80::/10, where cloud metadata lives),
//     multicast, broadcast or known cloud metadata address, allow-listed or
//     not. A "name:" address (never dialed) only for the respondent role.
//   - flood: at most Config.MaxEndpointsPerMember endpoints per member
//     (default 64) and Config.MaxEndpointsPerService per service and role
//     across all other members (default 256) are listed; a pull answer
//     is at most 4 MiB. Refused endpoints are counted in
//     [Stats].EndpointsRefused, described in [Stats].LastError and logged
//     once per member per 10 s.
//   - stay listed after it is gone: a member that left, was declared dead,
//     or refuses connections on its gossip port (its process is gone) loses
//     its endpoints at once; members with watched endpoints are re-pulled
//     every Config.DeadTimeout/4 to notice that before failure detection
//     does. Records of a member that is not alive are never taken (gossip
//     about a dead member, relayed late, brings back no endpoints). A
//     member back under the same name on a new address is pulled there.
//   - make others gossip with a forbidden address: a member whose gossip
//     address is unspecified, link-local or cloud metadata is refused
//     ([Stats].MembersRefused). Re-joins of gone members' addresses back
//     off (doubling up to 32 x Config.RejoinInterval) and end after
//     Config.RejoinWindow.
//
// What a member can still do: advertise any port on its own IP (or the
// allow-listed ranges), for any service name; serve bad answers there;
// with a gossip key but no TLS.VerifyNode, take a dead node's name after
// Config.ReclaimAfter. Without a gossip key anyone who reaches the port is
// a member. Config.CIDRsAllowed (default: any) restricts who may gossip
// at all: streams and alive messages from elsewhere are refused and
// counted in [Stats].GossipRefused, which also counts gossip memberlist
// refused for a wrong label or key (memberlist logs each with the peer's
// address; its logs go to Config.Logger, debug and info included).
//
// Constructors: [New] with a [Config] from [LANConfig] (data center) or
// [LocalConfig] (one machine, loopback, fast timings); [NewStatic].
//
// Workflow:
//
//	cfg := discovery.LANConfig()
//	cfg.Seeds = []string{"10.0.0.5:7946"}
//	node, err := discovery.New(cfg)
//	...
//	defer node.Leave(context.Background())
//	rep, err := reqrep.NewReplier(h, reqrep.WithDiscovery(node, "thumbnails"))
package discovery
