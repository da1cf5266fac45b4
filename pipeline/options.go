package pipeline

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
)

// Option configures the types of this package. The options shared by every
// type (codec, addresses, queues, discovery, ...) apply to all of them; the
// others say in their documentation which types they apply to, and giving
// one to another type fails with an error wrapping [spmesh.ErrInvalidOption].
type Option interface {
	apply(*config, target) error
}

// target is the type being configured; an option lists the targets it fits.
type target uint8

const (
	forPusher target = 1 << iota
	forPuller
	forProducer
	forWorker

	forAll = ^target(0)
)

func (t target) String() string {
	switch t {
	case forPusher:
		return "Pusher"
	case forPuller:
		return "Puller"
	case forProducer:
		return "Producer"
	case forWorker:
		return "Worker"
	}
	return fmt.Sprintf("target(%d)", uint8(t))
}

// config is everything the options can set, for every type of the package.
// Each type reads only its own part; add a part per new type rather than
// mixing fields.
type config struct {
	sock     sock.Settings  // every type: codec, addresses, queues, discovery
	pusher   pusherConfig   // Pusher only
	producer producerConfig // Producer only
	worker   workerConfig   // Worker only
	bare     bool           // Pusher, Puller: WithBareFrames
}

// Defaults of the at-least-once half.
const (
	// DefaultAckTimeout is how long a [Producer] waits for the ack of one
	// delivery before it sends the job again.
	DefaultAckTimeout = 30 * time.Second
	// DefaultMaxAttempts is how many deliveries a job gets before it goes
	// to the dead letter.
	DefaultMaxAttempts = 5
	// DefaultMaxInFlight is how many jobs a [Producer] has unacked at once.
	DefaultMaxInFlight = 64
	// DefaultConcurrency is how many jobs a [Worker] handles at once.
	DefaultConcurrency = 8
)

type producerConfig struct {
	ackTimeout  time.Duration // 0: none
	maxAttempts int
	maxInFlight int
	deadLetter  func(*DeadLetter) // nil: log it
	wait        bool

	outbox         string // "": none
	outboxJobs     int
	outboxBytes    int64
	outboxFailFast bool
	outboxSync     time.Duration // 0: fsync before accepted; > 0: fsync every outboxSync
}

type workerConfig struct {
	concurrency int
	credit      int // 0: concurrency
	dedupSize   int // 0: no de-duplication
	dedupTTL    time.Duration
}

type pusherConfig struct {
	nonBlocking bool
}

// option is the one implementation of Option: a setter, the types it fits
// and its name for error messages.
type option struct {
	name string
	fits target
	set  func(*config) error
}

func (o option) apply(c *config, t target) error {
	if err := sock.OnlyFor(o.name, uint8(o.fits), uint8(t), t.String()); err != nil {
		return err
	}
	return o.set(c)
}

func wrap(o sock.Option) Option {
	return option{fits: forAll, set: func(c *config) error { return o(&c.sock) }}
}

// newConfig applies opts for a t over the defaults.
func newConfig(t target, opts []Option) (config, error) {
	c := config{
		sock: sock.DefaultSettings(),
		producer: producerConfig{
			ackTimeout:  DefaultAckTimeout,
			maxAttempts: DefaultMaxAttempts,
			maxInFlight: DefaultMaxInFlight,
			outboxJobs:  DefaultOutboxJobs,
			outboxBytes: DefaultOutboxBytes,
		},
		worker: workerConfig{concurrency: DefaultConcurrency},
	}
	for _, o := range opts {
		if o == nil {
			return c, sock.Invalid("nil option")
		}
		if err := o.apply(&c, t); err != nil {
			return c, err
		}
	}
	return c, nil
}

// WithCodec sets the payload codec (default [spmesh.Msgpack]). Both ends
// must use the same one.
func WithCodec(c spmesh.Codec) Option { return wrap(sock.WithCodec(c)) }

// WithLogger sets the logger (silent by default).
func WithLogger(l *slog.Logger) Option { return wrap(sock.WithLogger(l)) }

// WithListen listens on addr, e.g. "tcp://0.0.0.0:7001" or "inproc://name".
func WithListen(addr string) Option { return wrap(sock.WithListen(addr)) }

// WithDial dials addr in the background, reconnecting as needed.
func WithDial(addr string) Option { return wrap(sock.WithDial(addr)) }

// WithTLS sets the TLS configuration for tls+tcp:// and wss:// addresses
// (it replaces the registry's spmesh.TLSPolicy configs for this socket).
// With [WithDiscovery] it means no plaintext by default: a binder listens on
// tls+tcp:// and a connector refuses discovered tcp:// and ws:// endpoints
// (counted in Stats.EndpointsRefused, logged).
func WithTLS(c *tls.Config) Option { return wrap(sock.WithTLS(c)) }

// WithRequireTLS refuses plaintext altogether, like the registry's
// TLSPolicy.Require: listening or dialing anything but tls+tcp:// or
// wss:// is an error, and only such endpoints are dialed from discovery.
func WithRequireTLS() Option { return wrap(sock.WithRequireTLS()) }

// WithTracer traces every job and push: a Producer starts a producer span
// per delivery (ended with its ack or nack) and a Pusher one per push,
// sending the trace context in the headers; a Worker's handler runs in the
// consumer span continuing it, and a Puller's [Message.Context] returns
// the consumer span of the message. Nothing without it; bare frames carry
// no headers, so no trace context. See [spmesh.Tracer] and package
// otelspmesh.
func WithTracer(t spmesh.Tracer) Option { return wrap(sock.WithTracer(t)) }

// WithMaxMessageSize sets the largest frame sent or accepted (default 8 MiB).
func WithMaxMessageSize(n int) Option { return wrap(sock.WithMaxMessageSize(n)) }

// WithQueueLen sets how many messages a socket buffers (default 1024): on a
// [Pusher], pushes accepted but not yet handed to a puller; on a [Puller],
// messages received but not yet taken by the application. A Pusher whose
// queue is full blocks (or, with [WithNonBlocking], fails). On a [Worker],
// it bounds the acks waiting to be written to each connection; a
// [Producer] has no such queue (its bound is [WithMaxInFlight]).
func WithQueueLen(n int) Option { return wrap(sock.WithQueueLen(n)) }

// WithSendTimeout sets how long a [Worker] waits to queue an ack for a
// producer that is not reading (default 2s). Past it the ack is dropped
// and counted in Stats.SendTimeouts (and Dropped), and the connection to
// that producer is closed: it delivers its unacked jobs again. While one
// handler waits for a producer, its other acks wait at most 250ms, then are
// dropped without waiting. Worker only.
func WithSendTimeout(d time.Duration) Option {
	return option{name: "WithSendTimeout", fits: forWorker, set: func(c *config) error { return sock.WithSendTimeout(d)(&c.sock) }}
}

// WithQueueBytes bounds the bytes of the messages a [Puller] holds for the
// application (default 16 MiB), on top of [WithQueueLen]; when either is
// reached the Puller stops reading, so its pushers block (or fail with
// [WithNonBlocking]). A message larger than the bound is still taken when
// the queue is empty. Puller only.
func WithQueueBytes(n int) Option {
	return option{name: "WithQueueBytes", fits: forPuller, set: func(c *config) error { return sock.WithQueueBytes(n)(&c.sock) }}
}

// WithReconnect sets the dial retry backoff (default 50ms doubling to 2s).
func WithReconnect(min, max time.Duration) Option { return wrap(sock.WithReconnect(min, max)) }

// WithStockTCP makes tcp:// and tls+tcp:// use mangos' stock transport
// instead of spmesh's batching one (the default; same wire format).
func WithStockTCP() Option { return wrap(sock.WithStockTCP()) }

// Connection limits of spmesh's TCP transport (tcp://, tls+tcp://); they
// cannot be combined with WithStockTCP. See the internal/sock options of
// the same names for the details.

// WithMaxConns sets how many connections each listener holds at once
// (default 4096); past it new connections are closed at once and counted
// in Stats.ConnsRefused.
func WithMaxConns(n int) Option { return wrap(sock.WithMaxConns(n)) }

// WithFrameTimeout sets how long a frame may take once its first byte
// arrived, plus one second per 128 KiB it claims (default 30s; 0: none).
// A connection past it is closed and counted in Stats.ConnTimeouts.
func WithFrameTimeout(d time.Duration) Option { return wrap(sock.WithFrameTimeout(d)) }

// WithIdleTimeout sets how long a connection accepted by a listener may go
// without exchanging a first frame (default 60s; 0: none). Connections that
// exchanged a frame are never closed for idling.
func WithIdleTimeout(d time.Duration) Option { return wrap(sock.WithIdleTimeout(d)) }

// WithHandshakeTimeout bounds connecting plus the TLS and SP handshakes
// (default 10s).
func WithHandshakeTimeout(d time.Duration) Option { return wrap(sock.WithHandshakeTimeout(d)) }

// WithDiscovery wires by service name through reg: a [Puller] listens and
// advertises itself as a puller of service; a [Pusher] dials every puller
// of service, and hangs up when one is withdrawn. Likewise a [Worker]
// advertises itself as a worker ([spmesh.RoleWorker]) and a [Producer]
// dials every worker of service. Pullers and workers of one service do not
// mix: a Pusher never dials a Worker, nor a Producer a Puller.
func WithDiscovery(reg spmesh.Registry, service string) Option {
	return wrap(sock.WithDiscovery(reg, service))
}

// WithNonBlocking makes a [Pusher]'s Push fail at once with an error
// wrapping [spmesh.ErrNoPeers] when no puller is connected or its send
// queue is full, instead of waiting. Pusher only.
func WithNonBlocking() Option {
	return option{name: "WithNonBlocking", fits: forPusher, set: func(c *config) error {
		c.pusher.nonBlocking = true
		return nil
	}}
}

// WithBareFrames makes a [Pusher] or [Puller] send and accept bare SP
// messages: the body is exactly the application bytes (the codec's output;
// use [spmesh.Raw] for plain bytes), with no spmesh envelope, so that it
// talks to unmodified NNG, nanomsg or pynng PUSH/PULL programs. Each
// message is its own frame. A bare socket keeps the spreading, the
// backpressure, the queue and size limits and the counters (a frame over
// [WithMaxMessageSize] is dropped and counted in Stats().TooLarge, as
// without it). It loses what the envelope carries: headers (PushHeader
// with headers fails, naming bare frames), message ids (a pulled
// [Message] has a zero ID) and the sender's time ([Message].Time is when
// the frame was received). Any frame is a message, so nothing is counted
// in DecodeErrors. With [WithDiscovery] a bare Puller is advertised as
// bare and a bare Pusher dials only bare pullers (an enveloped one only
// enveloped pullers): the others are counted in Stats().EndpointsRefused.
// Pusher and Puller only: a [Producer] or [Worker] needs the envelope's
// ids and acks for at-least-once delivery, and refuses it with an error
// wrapping [spmesh.ErrInvalidOption]. See WIRE.md.
func WithBareFrames() Option { return bareOption{} }

type bareOption struct{}

func (bareOption) apply(c *config, t target) error {
	if t&(forPusher|forPuller) == 0 {
		return sock.Invalid("WithBareFrames does not apply to a %s: at-least-once jobs need the envelope's ids and acks (bare frames are for Pusher and Puller)", t)
	}
	c.bare = true
	return nil
}

// WithAckTimeout sets how long a [Producer] waits for a worker to ack one
// delivery of a job (default [DefaultAckTimeout]); then it sends the job
// again, as a new attempt, to whichever worker is free (the first worker may
// still be running it: a duplicate). It must exceed the time a job takes,
// including the time it waits at a busy worker. 0 disables the timer: only a
// nack or a lost connection then redelivers, and a hung worker holds its
// job for as long as its connection lives. Producer only.
func WithAckTimeout(d time.Duration) Option {
	return option{name: "WithAckTimeout", fits: forProducer, set: func(c *config) error {
		if d < 0 {
			return sock.Invalid("ack timeout %v is negative", d)
		}
		c.producer.ackTimeout = d
		return nil
	}}
}

// WithMaxAttempts bounds the deliveries a [Producer] makes of one job
// before it hands the job to the dead letter ([WithDeadLetter]): n >= 1
// means at most n deliveries in all (the first included; default
// [DefaultMaxAttempts]); 0 means unbounded: the job is delivered until it
// is acked or its ctx ends, never dead-lettered for its attempts; a
// negative n is refused. reqrep.WithMaxAttempts means the same for a
// request's attempts. Producer only.
func WithMaxAttempts(n int) Option {
	return option{name: "WithMaxAttempts", fits: forProducer, set: func(c *config) error {
		if n < 0 {
			return sock.Invalid("max attempts %d is negative", n)
		}
		if n == 0 || n > unboundedAttempts {
			n = unboundedAttempts
		}
		c.producer.maxAttempts = n
		return nil
	}}
}

// unboundedAttempts stands for WithMaxAttempts(0): more deliveries than a
// job can get (attempt numbers are 32-bit on the wire and in the outbox).
const unboundedAttempts = math.MaxInt32

// WithMaxInFlight bounds the jobs a [Producer] has sent and not yet seen
// acked or given up (default [DefaultMaxInFlight]): the async window.
// Produce and ProduceAsync block while it is full. Size it to the workers'
// total concurrency to keep them all busy. Producer only.
func WithMaxInFlight(n int) Option {
	return option{name: "WithMaxInFlight", fits: forProducer, set: func(c *config) error {
		if n < 1 || n > 1<<16 {
			return sock.Invalid("max in flight %d out of range [1, 65536]", n)
		}
		c.producer.maxInFlight = n
		return nil
	}}
}

// WithDeadLetter sets the function a [Producer] calls with each job that
// ran out of attempts (every delivery nacked, timed out or lost). It runs
// on the producer's goroutine for that job, before the job's Produce or
// [Result] reports [ErrDeadLetter], and holds a place in the window while it
// runs: keep it short (store the job, alert, ...). Without it, dead letters
// are logged at level Error. Either way they are counted in
// Stats().DeadLettered. Producer only.
func WithDeadLetter(f func(dl *DeadLetter)) Option {
	return option{name: "WithDeadLetter", fits: forProducer, set: func(c *config) error {
		if f == nil {
			return sock.Invalid("nil dead-letter function")
		}
		c.producer.deadLetter = f
		return nil
	}}
}

// WithWaitForWorker makes a [Producer] wait for a worker to connect, until
// the job's ctx ends, instead of failing at once with an error wrapping
// [spmesh.ErrNoPeers]; a job whose worker is lost while no other is
// connected waits for one too. Producer only.
func WithWaitForWorker() Option {
	return option{name: "WithWaitForWorker", fits: forProducer, set: func(c *config) error {
		c.producer.wait = true
		return nil
	}}
}

// WithOutbox makes a [Producer] keep its unacked jobs in a crash-safe file
// at path (created if missing; a bbolt database): Submit, ProduceAsync and
// Produce accept a job only once it is written and fsynced there (written
// only, fsynced later, with [WithOutboxSync]), an acked or dead-lettered job
// is removed, and a Producer opened on the same path after a crash sends
// every job left there again, with its id, before any new one
// (Stats().Recovered). With an outbox, a delivery whose worker is lost waits
// for another (as with [WithWaitForWorker]). Only one Producer can hold a
// path: another fails at NewProducer with an error wrapping [ErrOutbox]. See
// the package documentation for what it guarantees. Producer only.
func WithOutbox(path string) Option {
	return option{name: "WithOutbox", fits: forProducer, set: func(c *config) error {
		if err := validOutboxPath(path); err != nil {
			return sock.Invalid("WithOutbox: %v", err)
		}
		c.producer.outbox = path
		return nil
	}}
}

// WithOutboxLimit bounds the jobs and bytes the outbox ([WithOutbox]) holds
// (default [DefaultOutboxJobs], [DefaultOutboxBytes]). When full, Submit
// waits for room until its ctx ends (or fails with [ErrOutboxFull], with
// [WithOutboxFailFast]). Producer only.
func WithOutboxLimit(jobs int, bytes int64) Option {
	return option{name: "WithOutboxLimit", fits: forProducer, set: func(c *config) error {
		if jobs < 1 || bytes < 1<<10 {
			return sock.Invalid("WithOutboxLimit: %d jobs, %d bytes: want at least 1 job and 1 KiB", jobs, bytes)
		}
		c.producer.outboxJobs, c.producer.outboxBytes = jobs, bytes
		return nil
	}}
}

// WithOutboxFailFast makes Submit fail at once with an error wrapping
// [ErrOutboxFull] when the outbox is at its limit, instead of waiting for
// room. Producer only.
func WithOutboxFailFast() Option {
	return option{name: "WithOutboxFailFast", fits: forProducer, set: func(c *config) error {
		c.producer.outboxFailFast = true
		return nil
	}}
}

// WithOutboxSync sets when the outbox ([WithOutbox]) is fsynced. 0 (the
// default): every commit, before its jobs are accepted; a job Submit
// accepted survives a process crash and a host crash or power loss. An
// interval > 0 (from [MinOutboxSync] to [MaxOutboxSync]) is NATS
// JetStream's default file-store model (sync_interval, 2 minutes there): a
// job is accepted once written to the outbox file (in the OS's page cache,
// no fsync), and the file is fsynced every interval and at Drain and Close.
// It survives a process crash (SIGKILL, OOM, panic: the OS still holds the
// pages) but not a host crash or power loss: that can lose the jobs
// accepted in the last interval, and, since bbolt orders its writes only
// by fsync, can leave the file corrupt (NewProducer then fails with
// [ErrOutbox] and its jobs are lost). See the package documentation.
// Producer only.
func WithOutboxSync(interval time.Duration) Option {
	return option{name: "WithOutboxSync", fits: forProducer, set: func(c *config) error {
		if interval != 0 && (interval < MinOutboxSync || interval > MaxOutboxSync) {
			return sock.Invalid("WithOutboxSync: interval %v: want 0 (fsync every commit) or from %v to %v", interval, MinOutboxSync, MaxOutboxSync)
		}
		c.producer.outboxSync = interval
		return nil
	}}
}

// WithConcurrency sets how many jobs a [Worker] handles at once (default
// [DefaultConcurrency]), each in its own long-lived goroutine. It is also
// half the worker's credit unless [WithCredit] says otherwise. Worker only.
func WithConcurrency(n int) Option {
	return option{name: "WithConcurrency", fits: forWorker, set: func(c *config) error {
		if n < 1 || n > 1<<16 {
			return sock.Invalid("concurrency %d out of range [1, 65536]", n)
		}
		c.worker.concurrency = n
		return nil
	}}
}

// WithCredit sets the credit a [Worker] announces to producers: how many
// of a producer's jobs it takes at once (default twice its
// [WithConcurrency]: one job waits ready for each handler, hiding the
// round trip between an ack and the next job). A producer never sends a
// worker more than its credit; jobs over the concurrency wait at the
// worker with their ack timers running. A larger credit means less idle
// time between jobs, a smaller one spreads jobs to new or idle workers
// sooner. Worker only.
func WithCredit(n int) Option {
	return option{name: "WithCredit", fits: forWorker, set: func(c *config) error {
		if n < 1 || n > 1<<16 {
			return sock.Invalid("credit %d out of range [1, 65536]", n)
		}
		c.worker.credit = n
		return nil
	}}
}

// WithDedup makes a [Worker] remember the ids of the last size jobs it
// acked, each for at most ttl (0: until it is among the oldest past size).
// A job whose id it remembers is acked again at once, without running the
// handler, and counted in Stats().Duplicates; a job arriving while another
// delivery of the same id is running here waits for that one and takes its
// outcome when it was an ack. The window is per worker: a duplicate that
// reaches another worker runs again. A job without an id (16 zero
// bytes, as a foreign producer may send) is never de-duplicated: it runs
// every time. Off by default. Worker only.
func WithDedup(size int, ttl time.Duration) Option {
	return option{name: "WithDedup", fits: forWorker, set: func(c *config) error {
		if size < 1 || size > 1<<24 {
			return sock.Invalid("dedup size %d out of range [1, 16777216]", size)
		}
		if ttl < 0 {
			return sock.Invalid("dedup ttl %v is negative", ttl)
		}
		c.worker.dedupSize, c.worker.dedupTTL = size, ttl
		return nil
	}}
}
