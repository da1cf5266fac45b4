// Command spmesh joins an spmesh mesh from a shell and talks to it: list its
// members and services, watch them change, and publish, subscribe, request,
// reply, push, pull, survey and respond by service name. It is to spmesh what
// nats is to NATS and nngcat to NNG.
//
// Traps, first:
//   - Every command joins the mesh as a short-lived member (a discovery.Node)
//     through --join (or SPMESH_JOIN) and leaves it gracefully on exit and on
//     SIGINT/SIGTERM; a second signal kills it at once. With --dial/--listen
//     alone it joins nothing and talks to the given addresses.
//   - pub and push are at most once. pub waits for --subscribers subscribers
//     (default 1) to connect, at most --wait, and publishes anyway after that
//     (a warning says how many heard it). Both linger (--linger) after the
//     last message so that what is queued reaches the wire before the process
//     exits: mangos has no flush.
//   - produce is at least once: it waits until every job is acked by a
//     worker (exit 5 after --timeout). With --outbox PATH each job is fsynced
//     to PATH before it is sent, and jobs a killed, interrupted or timed-out
//     run left there are sent first by the next run on PATH. --outbox-sync
//     INTERVAL fsyncs every INTERVAL instead (a job survives the process
//     being killed, not a power loss).
//   - work runs each job with --command (sh -c, the body on stdin, in a
//     process group of its own): exit 0 acks; a non-zero exit nacks (its
//     status and stderr's last line go back), and so does --timeout, which
//     kills the group; the producer resends until its attempts run out. A
//     job can run twice (at least once); --dedup N acks a job this process
//     acked among its last N without running it.
//   - A survey reaches the respondents connected when it is sent: survey waits
//     up to --wait for them (or until the --expect'ed ones are connected).
//     Respondents do not advertise themselves, so "who did not answer" is
//     known by name only for --expect'ed respondents (spmesh respond answers
//     under its node name, or --name); otherwise survey reports how many
//     connected respondents did not answer.
//   - Bodies: with the msgpack codec (default) a message given on the command
//     line that parses as JSON is sent as that value (so a Go peer decodes it
//     into a struct or map); anything else as a string (--string forces it).
//     Received msgpack bodies are shown as JSON; raw bodies as text, or as hex
//     when they are not printable UTF-8.
//   - --bare (req, reply, pub, sub, push, pull, survey, respond) drops the
//     spmesh envelope: messages are exactly the bytes given (no codec), so
//     req calls an NNG/nanomsg REP program (nngcat --rep), an NNG REQ
//     program calls reply, push feeds nngcat --pull and nngcat --push feeds
//     pull. Lost: headers (refused), the caller's deadline, remote errors (a
//     failing bare reply sends nothing; the caller times out), ids and
//     attempts. Both ends must be bare; in a mesh a bare command sees only
//     bare peers. pub/sub frames are the topic then the body (sub --bare
//     subscribes to byte prefixes and prints frames whole); bare survey
//     answers come from an address, not a name. On produce --bare is a
//     usage error: at-least-once jobs need the envelope.
//   - TLS: --tls-cert/--tls-key (this node's certificate), --tls-ca (the CA
//     peers must be signed by; with a certificate too, mutual TLS),
//     --require-tls (no plaintext: plaintext endpoints are not dialed,
//     plaintext --listen/--dial addresses are a usage error) and
//     --verify-node (the certificate at an endpoint must name the node that
//     advertised it; a node given --tls-cert and no --name takes the
//     certificate's first DNS name), or SPMESH_TLS_CERT, SPMESH_TLS_KEY, SPMESH_TLS_CA,
//     SPMESH_REQUIRE_TLS, SPMESH_VERIFY_NODE. In a mesh they become the
//     node's TLS policy (discovery.Config.TLS) and apply to every socket; with
//     --dial/--listen alone they are given to the socket. A request or push
//     that nobody answers says why when nothing could be connected (e.g. a
//     refused certificate); a join that fails names the likely cause
//     (another --label or --key, or TLS on one side only).
//   - stats and top ask the mesh itself (a survey on the reserved service
//     _spmesh.stats, answered by every node that runs metrics.ServeMesh and
//     by spmesh agent): no extra port. A node that does not run a stats
//     responder is not seen. top's rates are computed between two answers
//     of one node by that node's clock; a node lists at most 64 sockets
//     and 16 peers per socket. members and services hide spmesh's own
//     _spmesh.* services unless named.
//   - agent --http host:port serves /metrics (Prometheus text: the node's
//     discovery figures and member counts, Go runtime, process), /healthz,
//     /members and /services (JSON) until the agent stops.
//
// Exit codes: 0 success, 1 other error, 2 usage, 3 cannot join the mesh,
// 4 no such service, 5 nobody answered, 6 the remote handler returned an
// error, 130 interrupted.
//
// Run "spmesh help" and "spmesh help COMMAND" for the commands and their
// flags; cmd/spmesh/README.md has a session transcript.
package main
