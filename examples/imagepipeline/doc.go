// Command imagepipeline is spmesh's flagship demo: a brokerless
// image-processing pipeline of worker processes, wired only by service names.
//
//	go run ./examples/imagepipeline                  # the whole demo on this machine
//	go run ./examples/imagepipeline -chaos           # kill a worker mid-run, start a new one
//	go run ./examples/imagepipeline -chaos-producer  # kill the producer mid-run, restart it on its outbox
//	go run ./examples/imagepipeline -in ./photos     # your JPEG/PNG files instead of synthetic ones
//
// With no flags it starts a sink, a producer and 3 workers as child
// processes of the same binary on loopback, runs 60 synthetic images through
// them in a few seconds, shows a progress bar (images/s, per-worker counts
// and load), prints a summary and where the contact sheet is, and stops every
// process cleanly. The supervisor (the parent) is the mesh's seed: the one
// address a child is given is the seed's gossip address (-join); every
// socket finds its peers by service name through discovery.Node.
//
// # Traps first
//
//   - What is dropped: the "image ready" announcements and the workers' load
//     reports travel over pub/sub, at most once; a listener that is not
//     connected yet misses them (the summary counts the announcements seen).
//     The load survey is one round, deadline bound: a worker that does not
//     answer within 400 ms is left out of that round. Images and results
//     are never dropped.
//   - What is retried: every image is an at-least-once job
//     (pipeline.Producer to pipeline.Worker). It is delivered again when its
//     worker dies (its connection drops), nacks it, or does not ack within
//     30 s, up to 20 deliveries, then logged as dead-lettered and the run
//     fails. A worker acks an image only once the sink has acked its
//     result, so an acked image is a stored image.
//   - Results are jobs too (each worker is a pipeline.Producer to the sink's
//     pipeline.Worker): a sink killed or restarted mid-run loses nothing.
//     The sink acks a result only after its files are written (under a
//     temporary name, then renamed) and a line is appended to the run's
//     index.jsonl; a result it had not acked is delivered again by the
//     worker holding it, to the restarted sink, which reads the index back
//     (so what was stored before stays stored, and a redelivery counts as a
//     duplicate). Try -chaos-sink.
//   - The producer survives its own crash: it keeps its unacked jobs in a
//     crash-safe outbox (pipeline.WithOutbox, a bbolt file in a temporary
//     directory of the supervisor's, removed at the end; -outbox FILE with
//     -role producer). A job is fsynced there before Submit accepts it; a
//     producer restarted on the same file and -run sends every job left
//     there again (the jobs the dead one had not seen acked), before new
//     ones. Where to resume: after each accepted Submit the producer writes
//     how many images it has submitted to FILE.progress (a whole-file
//     replace, not fsynced); the new producer skips that many. Each skipped
//     image was accepted, so it is stored (acked: a worker acks only once
//     the sink has) or in the outbox (recovered), never lost; the progress
//     file is never ahead of the outbox, only behind (the image submitted
//     as the process died, or after a host crash, an older file), and an
//     image submitted again keeps its job id, so it counts as a duplicate.
//     A missing or unreadable progress file means starting from the first
//     image: duplicates, not losses. With -role producer -outbox FILE and
//     no -run, a producer restarted on FILE goes on with the run recorded
//     there unless that run finished. The restarted producer waits for its
//     recovered jobs (Drain) before it asks the sink to finish. Try
//     -chaos-producer: once a third of the images are stored the supervisor
//     SIGKILLs the producer and starts producer-2 (a new mesh name: the dead
//     one's stays taken until the mesh forgets it); the summary gives the
//     images the dead one had submitted and the jobs its successor
//     recovered (Stats().Recovered). The jobs the dead producer had in
//     flight are usually still run by their workers too, so most recovered
//     jobs show up as duplicates.
//   - Duplicates: at-least-once means a job can run twice (a worker killed
//     after its result reached the sink, an ack timeout). Workers keep a
//     de-duplication window (pipeline.WithDedup) for jobs delivered to them
//     again; the sink stores each image once and counts the rest in the
//     summary's duplicates.
//   - Load: jobs go to the worker connections ready to send, favouring the
//     worker that answered last (mangos REQ scheduling, see package
//     pipeline), not the least loaded. The demo starts the producer once
//     its workers are in the mesh, and the producer waits (up to 3 s) for
//     its connections to the workers discovery knows before the first job,
//     so the load spreads. A worker that joins mid-run is connected within a
//     gossip round and answers the load survey at once, but it gets only the
//     jobs whose send finds its connection first: often a few, sometimes
//     none (with -chaos, watch worker-4's count).
//   - What blocks: the producer keeps -window jobs in flight (default 8) and
//     waits for room; workers wait for the sink while it is down (their jobs
//     then take longer, and past the ack timeout the producer sends them
//     again). With no worker or no sink, everything waits for one to join.
//   - Children die with the supervisor (Linux: the parent death signal,
//     SIGKILL); elsewhere a supervisor killed hard leaves them running.
//     Ctrl-C stops the supervisor gracefully: the children ignore the
//     terminal's SIGINT and are stopped in order with SIGTERM (producer,
//     then workers, which finish the jobs in hand, then the sink), each
//     leaving the mesh (discovery.Node.Leave). A second Ctrl-C kills at
//     once. With -role, Ctrl-C or SIGTERM stops that process gracefully.
//
// # The roles and the services they meet on
//
//	producer  images -> "imagepipeline.jobs"    (pipeline.Producer, at least once)
//	          announces "images.ready" on "imagepipeline.events" (pubsub.Publisher)
//	          surveys "imagepipeline.load" twice a second (survey.Surveyor), publishes "workers.load"
//	          asks "imagepipeline.sink" to finish the run (reqrep.Requester)
//	worker    "imagepipeline.jobs" (pipeline.Worker): thumbnail (Catmull-Rom, golang.org/x/image/draw)
//	          plus a grayscale copy (-transform gray) or a 1/2, 1/4, 1/8 ladder (-transform ladder)
//	          results -> "imagepipeline.results" (pipeline.Producer, at least once)
//	          answers "imagepipeline.load" (survey.Respondent)
//	sink      "imagepipeline.results" (pipeline.Worker): writes thumbs/, gray/ (or the ladder),
//	          index.jsonl, and at the end contact-sheet.png
//	          answers "imagepipeline.sink" status and finish requests (reqrep.Replier)
//	          announces "images.stored" on "imagepipeline.events"
//
// The demo's supervisor polls the sink's status (req/rep) for the progress
// bar and listens to "workers.load" for who is busy.
//
// # Run one role per host
//
//	host-a$ imagepipeline -role sink                        # seed; gossip on :7946, output in ./imagepipeline-out
//	host-b$ imagepipeline -role worker -join host-a:7946
//	host-c$ imagepipeline -role worker -join host-a:7946
//	host-d$ imagepipeline -role producer -join host-a:7946 -in ./photos
//
// Start them in any order; the producer runs its images, has the sink finish
// the run, prints the summary and leaves; workers and the sink run until
// Ctrl-C. Any member's address works as -join. -gossip sets the gossip
// address (default :7946; a loopback address picks fast local timings; when
// the default port is taken, a free one is used). Start the workers before
// the producer for an even spread (see Load above).
//
// # Watching it
//
// Every process puts its sockets and node in a metrics.Collector and
// answers stats surveys (metrics.ServeMesh), so the spmesh command line
// shows the pipeline live: "spmesh top --label imagepipeline --join SEED"
// (SEED: the demo's "mesh seed" address, or any member's). With
// -metrics host:port a process also serves Prometheus /metrics there; the
// demo serves its own at that port and gives its children the next ports
// in start order (sink, workers, producer, then any restarted process),
// printed as each starts; with port 0 each picks a free one (logged at
// info level, -v). The summary's "service time" line is each worker's
// mean job time, send to ack, from the producer's per-peer stats
// (spmesh.PeerStats.MeanReplyTime): the work, the result's hand-off to the
// sink and the network. A worker gone before the end is listed by its
// address, or not at all once its connection is closed.
//
// # Secure mode
//
// With -secure the demo makes a throwaway certificate authority, one
// certificate per process naming it (its node name as a DNS SAN), and a
// gossip key, in a temporary directory removed at the end, and runs every
// process with discovery.Config.SecretKey and a spmesh.TLSPolicy: gossip is
// encrypted, every socket listens and dials on tls+tcp:// with mutual TLS,
// plaintext is refused (Require: a plaintext endpoint is never dialed, only
// counted in Stats.EndpointsRefused), and the certificate at each endpoint
// must name the member that advertised it (VerifyNode), so a process cannot
// serve another's traffic. The summary lists the endpoints advertised
// during the run; TestDemoSecure checks that each is tls+tcp://. With
// -role, -pki DIR runs one process in the same mode from a directory
// holding ca.pem, gossip.key, NAME.pem and NAME-key.pem (NAME is -name).
//
// Output goes to a new directory under os.TempDir() for the demo, and to
// ./imagepipeline-out with -role sink (kept across restarts); -out changes
// either. Each run is a subdirectory named by its run id.
package main
