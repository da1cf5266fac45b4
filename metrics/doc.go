// Package metrics exports the Stats of spmesh sockets and discovery nodes
// as Prometheus metrics. It is the only spmesh package that imports
// Prometheus: programs that do not use it do not link it.
//
//	c := metrics.NewCollector()
//	prometheus.MustRegister(c)
//	c.Add("images", "worker", w) // any socket: Publisher, Worker, Requester...
//	c.AddNode(node)              // a discovery.Node
//	defer c.Remove("images", "worker")
//
// [Handler] serves a collector (with the Go runtime and process figures)
// from a registry of its own, for a process that exports nothing else.
//
// Nothing is counted on the message path: the [Collector] calls each
// socket's Stats method when Prometheus scrapes it, so a scrape costs one
// Stats call per socket and nothing is dropped, blocked or retried by the
// collector. Stats keep working after a socket is closed; [Collector.Remove]
// it to stop exporting its series.
//
// Every socket series carries the labels service and role given to
// [Collector.Add]; a (service, role) pair is added once ([ErrDuplicate]),
// so give two sockets of one role distinct roles ("worker-1", "worker-2").
// Per-peer series add the label peer (the peer's remote address), at most
// [MaxPeers] a socket. Node series carry the label node (its name).
//
// # Metrics
//
// The same name means the same thing on every socket type that has it. A
// socket type without the figure does not export the series.
//
//	metric                          type     meaning                                          socket types
//	spmesh_messages_sent_total      counter  messages handed to the transport                 all
//	spmesh_messages_received_total  counter  messages delivered to the application            all
//	spmesh_dropped_total            counter  messages known lost (overflow, gaps, late)       all
//	spmesh_dropped_queue_full_total counter  of which: a queue was full                       all (spmesh.Stats.DroppedQueueFull)
//	spmesh_dropped_closed_total     counter  of which: connection or socket closed            all (spmesh.Stats.DroppedClosed)
//	spmesh_retries_total            counter  requests resent, jobs redelivered                all (spmesh.Stats.Resent)
//	spmesh_decode_errors_total      counter  frames or payloads discarded undecoded           all
//	spmesh_too_large_total          counter  messages refused for size                        all
//	spmesh_send_timeouts_total      counter  replies/acks/answers a peer did not take in time all
//	spmesh_conns_refused_total      counter  connections refused at the connection cap        all
//	spmesh_conn_timeouts_total      counter  connections closed on frame or idle timeout      all
//	spmesh_handshake_errors_total   counter  failed SP or TLS handshakes                      all
//	spmesh_endpoints_refused_total  counter  discovered endpoints refused by the TLS policy    all
//	spmesh_peers                    gauge    connections established                          all
//	spmesh_sent_bytes_total         counter  frame bytes written, per connection written to   all (spmesh.Stats.BytesSent)
//	spmesh_received_bytes_total     counter  frame bytes read from connections                all (spmesh.Stats.BytesReceived)
//	spmesh_reply_seconds            histogram send to reply, ack or in-time answer            Requester, Producer, Surveyor (ReplyTime)
//	spmesh_in_flight                gauge    calls, jobs or handlers in progress              Requester, Replier, Producer, Worker, Respondent
//	spmesh_timeouts_total           counter  attempts/deliveries unanswered in time           Requester, Producer
//	spmesh_lost_total               counter  attempts/deliveries whose connection dropped     Requester, Producer
//	spmesh_remote_errors_total      counter  replies carrying a handler error; nacks          Requester (RemoteErrors), Producer (Nacked)
//	spmesh_handler_errors_total     counter  local handler failures, panics included          Replier (Errors), Worker (Nacked), Respondent (Errors)
//	spmesh_handler_panics_total     counter  recovered handler panics                         Replier, Worker, Respondent
//	spmesh_handlers_abandoned_total counter  handlers still running when Close gave up        Replier, Worker, Respondent
//	spmesh_draining                 gauge    1 once Drain was called                          Replier, Worker
//	spmesh_acked_total              counter  jobs acked                                       Producer, Worker
//	spmesh_produced_total           counter  jobs accepted                                    Producer
//	spmesh_dead_lettered_total      counter  jobs out of attempts                             Producer
//	spmesh_failed_total             counter  jobs ended otherwise unacked                     Producer
//	spmesh_recovered_total          counter  jobs resent from the outbox at open              Producer
//	spmesh_duplicates_total         counter  deliveries acked from the dedup window           Worker
//	spmesh_declined_total           counter  survey answers that declined                     Respondent
//	spmesh_late_total               counter  answers after the survey ended (in dropped)      Surveyor
//	spmesh_gaps_total               counter  sequence holes, all publishers (in dropped)      Subscriber
//	spmesh_peer_in_flight           gauge    requests/jobs at the peer, unanswered            Requester, Producer (label peer)
//	spmesh_peer_credit              gauge    requests/jobs the peer takes at once             Requester, Producer (label peer)
//	spmesh_peer_done_total          counter  replies (acks, nacks) from the peer              Requester, Producer (label peer)
//	spmesh_peer_failed_total        counter  requests/jobs to the peer lost or timed out      Requester, Producer (label peer)
//	spmesh_peer_mean_reply_seconds  gauge    mean send-to-reply time of the peer              Requester, Producer (label peer)
//
// Publisher, Pusher and Puller have only the spmesh.Stats rows.
//
// Discovery nodes ([Collector.AddNode]) export, labelled node:
// spmesh_discovery_endpoints_refused_total, _records_refused_total,
// _members_refused_total, _handshake_errors_total, _pull_errors_total,
// _gossip_refused_total and _dropped_events_total (counters, the fields of
// discovery.Stats of the same names), and the gauge
// spmesh_discovery_members{state="alive"|"suspect"|"left"|"failed"} from
// [discovery.Node.MemberCounts] (alive includes the node itself and the
// suspects; left and failed are the members gone recently, within the
// node's re-join window). MemberCounts fetches nothing: a scrape does not
// make the node pull records (Node.Members would).
//
// # Stats over the mesh
//
// [ServeMesh] makes a node answer stats surveys: a survey respondent on the
// reserved service [StatsService] ("_spmesh.stats"), wired through the
// node, answers each survey with a [Snapshot]: the node's name, member
// counts and discovery counters, and the figures of the collector's
// sockets (the metric names above without "spmesh_", in
// [SocketSnapshot].Values, and the per-peer figures in Peers). It needs no
// port of its own (respondents dial the surveyor). [QueryMesh] runs one
// such survey from a [survey.Surveyor] wired to StatsService; the spmesh
// command line's stats and top commands are built on it.
//
//	resp, err := metrics.ServeMesh(node, c) // c: the node's Collector
//	defer resp.Close()
//
// Bounds: a Snapshot lists at most [MaxSnapshotSockets] sockets (the first
// by service and role; Snapshot.Omitted counts the rest) and
// [MaxSnapshotPeers] peers per socket (the slowest first; PeersOmitted
// counts the rest); questions and answers over [MaxStatsMessage] (1 MiB) are refused. The
// responder answers two surveys at once; more wait in its socket's queue,
// and what its survey.Respondent drops (a surveyor that does not read) is
// counted in its own Stats. Anyone in the mesh may ask: the answer holds
// service names, roles, figures and peer addresses, nothing that
// discovery does not already tell a member.
package metrics
