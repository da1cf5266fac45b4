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
// The same name means the same thing on every socket type that has it,
// and each is the field of the socket's Stats named in parentheses (the
// vocabulary of the table in package spmesh's doc). A socket type without
// the figure does not export the series.
//
//	metric                             type      meaning                                          socket types (field)
//	spmesh_messages_sent_total         counter   messages handed to the transport                 all (Sent)
//	spmesh_messages_received_total     counter   messages delivered to the application            all (Received)
//	spmesh_dropped_total               counter   messages known lost: the sum of the causes below all (Dropped)
//	spmesh_dropped_queue_full_total    counter   of which: a queue was full                       all (DroppedQueueFull)
//	spmesh_dropped_closed_total        counter   of which: connection or socket closed            all (DroppedClosed)
//	spmesh_dropped_too_large_total     counter   of which: received over the size limit           all (DroppedTooLarge)
//	spmesh_dropped_send_timeout_total  counter   of which: a peer did not take it in time         all (DroppedSendTimeout)
//	spmesh_dropped_expired_total       counter   of which: arrived past its caller's deadline     all (DroppedExpired)
//	spmesh_dropped_gap_total           counter   of which: sequence holes, all publishers         all (DroppedGap)
//	spmesh_dropped_late_total          counter   of which: answers after the survey ended         all (DroppedLate)
//	spmesh_retries_total               counter   requests resent, jobs redelivered                all (Resent)
//	spmesh_decode_errors_total         counter   frames or payloads discarded undecoded           all (DecodeErrors)
//	spmesh_too_large_total             counter   messages refused for size                        all (TooLarge)
//	spmesh_send_timeouts_total         counter   replies/acks/answers a peer did not take in time all (SendTimeouts)
//	spmesh_conns_refused_total         counter   connections refused at the connection cap        all (ConnsRefused)
//	spmesh_conn_timeouts_total         counter   connections closed on frame or idle timeout      all (ConnTimeouts)
//	spmesh_handshake_errors_total      counter   failed SP or TLS handshakes                      all (HandshakeErrors)
//	spmesh_endpoints_refused_total     counter   discovered endpoints refused by the TLS policy    all (EndpointsRefused)
//	spmesh_peers                       gauge     connections established                          all (Peers)
//	spmesh_sent_bytes_total            counter   frame bytes written, per connection written to   all (BytesSent)
//	spmesh_received_bytes_total        counter   frame bytes read from connections                all (BytesReceived)
//	spmesh_draining                    gauge     1 once Drain was called                          all (Draining)
//	spmesh_reply_seconds               histogram send to reply, ack or in-time answer            Requester, Producer, Surveyor (ReplyTime)
//	spmesh_in_flight                   gauge     calls, jobs, surveys or handlers in progress     Requester, Replier, Producer, Worker, Surveyor, Respondent (InFlight)
//	spmesh_timeouts_total              counter   attempts/deliveries unanswered in time           Requester, Producer (Timeouts)
//	spmesh_lost_total                  counter   attempts/deliveries whose connection dropped     Requester, Producer (Lost)
//	spmesh_remote_errors_total         counter   replies carrying the peer's handler error        Requester, Producer (RemoteErrors)
//	spmesh_handler_errors_total        counter   own handler failures, panics included            Replier, Worker, Respondent (HandlerErrors)
//	spmesh_handler_panics_total        counter   recovered handler panics                         Replier, Worker, Respondent (Panics)
//	spmesh_handlers_abandoned_total    counter   handlers still running when Close gave up        Replier, Worker, Respondent (Abandoned)
//	spmesh_acked_total                 counter   jobs acked                                       Producer, Worker (Acked)
//	spmesh_produced_total              counter   jobs accepted                                    Producer (Produced)
//	spmesh_dead_lettered_total         counter   jobs out of attempts                             Producer (DeadLettered)
//	spmesh_failed_total                counter   jobs ended otherwise unacked                     Producer (Failed)
//	spmesh_recovered_total             counter   jobs resent from the outbox at open              Producer (Recovered)
//	spmesh_duplicates_total            counter   deliveries acked from the dedup window           Worker (Duplicates)
//	spmesh_declined_total              counter   survey answers that declined                     Respondent (Declined)
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
