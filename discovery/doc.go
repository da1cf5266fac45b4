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
//     Config.RejoinWindow, so a mesh split for longer than
//     Config.DeadTimeout merges again); fetching a peer's full records when
//     they did not fit its metadata.
//   - A peer that dies is dropped after failure detection (about
//     SuspicionMult * ProbeInterval); one that calls Leave is dropped at once.
//   - Names must be unique. A node restarted under the same name on a new
//     address is accepted once the old one is declared dead and
//     Config.ReclaimAfter has passed (before that, the newcomer is refused
//     and logged as a conflict, and retried by the re-join loop).
//   - Node metadata is limited to 512 bytes by memberlist. Endpoints are
//     kept there when they fit; when they do not (e.g. 50 services), the
//     metadata carries a version only and peers fetch the full records over
//     TCP. Nothing is truncated; past [MaxEndpoints] Advertise fails with
//     spmesh.ErrTooLarge.
//   - Gossip encryption must be configured at start (Config.SecretKey);
//     keys then rotate with [Node.InstallKey], [Node.UseKey] and
//     [Node.RemoveKey], on every node (the keyring is not gossiped).
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
