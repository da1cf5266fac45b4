package pubsub

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
)

// Option configures a [Publisher] or a [Subscriber]. Options that apply to
// one side only say so; giving one to the other side is an error wrapping
// [spmesh.ErrInvalidOption] that names the option.
type Option interface{ apply(*config) error }

type config struct {
	side     side // the type being configured
	sock     sock.Settings
	subs     []string
	noBatch  bool
	tail     time.Duration // WithTailInterval
	slow     func(SlowSubscriber)
	gap      func(Gap)
	hold     time.Duration // WithBackpressure; 0: drop
	shedWait time.Duration // WithShedWait, if shedSet
	shedSet  bool
	bare     bool // WithBareFrames
}

type optionFunc func(*config) error

func (f optionFunc) apply(c *config) error { return f(c) }

// side is the type an option configures: one side's options given to the
// other are refused (sock.OnlyFor).
type side uint8

const (
	forPublisher side = 1 << iota
	forSubscriber
)

func (s side) String() string {
	if s == forPublisher {
		return "Publisher"
	}
	return "Subscriber"
}

// sided is an option for one side only.
func sided(s side, name string, f func(*config) error) Option {
	return optionFunc(func(c *config) error {
		if err := sock.OnlyFor(name, uint8(s), uint8(c.side), c.side.String()); err != nil {
			return err
		}
		return f(c)
	})
}

func wrap(o sock.Option) Option { return optionFunc(func(c *config) error { return o(&c.sock) }) }

// The default queue bounds, the same on both sides: a [Publisher] queues
// up to DefaultQueueLen messages and DefaultQueueBytes bytes for each
// subscriber connection, and a [Subscriber] holds up to as much for its
// application (see the package doc, "Queues"). Like NATS's default pending
// limits for a subscription (64 Ki messages, 64 MiB), they absorb a burst
// of tens of thousands of small messages.
const (
	DefaultQueueLen   = 64 << 10
	DefaultQueueBytes = 32 << 20
)

// DefaultTailInterval is how long a Publisher stays idle before it sends
// its tail frames (see [WithTailInterval]).
const DefaultTailInterval = 200 * time.Millisecond

// slowEvery is the least interval between two [SlowSubscriber] events for
// one subscriber connection.
const slowEvery = time.Second

func newConfig(s side, opts []Option) (config, error) {
	c := config{side: s, sock: sock.DefaultSettings()}
	c.sock.RecvQueue, c.sock.SendQueue = DefaultQueueLen, DefaultQueueLen
	c.sock.QueueBytes = DefaultQueueBytes
	c.tail = DefaultTailInterval
	for _, o := range opts {
		if o == nil {
			return c, sock.Invalid("nil option")
		}
		if err := o.apply(&c); err != nil {
			return c, err
		}
	}
	for _, p := range c.subs { // once WithBareFrames, in any order, is known
		if _, err := parseSub(p, c.bare); err != nil {
			return c, sock.Invalid("subscription: %v", err)
		}
	}
	return c, nil
}

// WithCodec sets the payload codec (default [spmesh.Msgpack]).
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

// WithTracer traces every publication: Publish starts a producer span
// (ended once the message is queued) and sends its trace context in the
// message's headers; a Subscriber starts a consumer span per message
// received, ended when it is queued, whose context [Message.Context]
// returns. Nothing without it; bare frames carry no headers, so no trace
// context. See [spmesh.Tracer] and package otelspmesh.
func WithTracer(t spmesh.Tracer) Option { return wrap(sock.WithTracer(t)) }

// WithMaxMessageSize sets the largest frame sent or accepted (default 8 MiB).
func WithMaxMessageSize(n int) Option { return wrap(sock.WithMaxMessageSize(n)) }

// WithQueueLen bounds the queues in messages (default [DefaultQueueLen]):
// on a [Publisher], the queue of each subscriber connection (a batch frame
// counts the messages it carries); on a [Subscriber], the messages held for
// the application. Past it (or [WithQueueBytes]) messages are dropped,
// counted (see the package doc, "Queues").
func WithQueueLen(n int) Option { return wrap(sock.WithQueueLen(n)) }

// WithQueueBytes bounds the same queues as [WithQueueLen] in bytes
// (default [DefaultQueueBytes]): on a [Publisher], the frames queued for
// each subscriber connection; on a [Subscriber], the messages held for the
// application (each charged its frame's size, a batch to its first
// message, plus 256 bytes). A message larger than the bound is still
// queued when the queue is empty.
func WithQueueBytes(n int) Option { return wrap(sock.WithQueueBytes(n)) }

// WithReconnect sets the dial retry backoff (default 50ms doubling to 2s).
func WithReconnect(min, max time.Duration) Option { return wrap(sock.WithReconnect(min, max)) }

// WithDiscovery wires by service name through reg: a Publisher listens and
// advertises, a Subscriber dials every publisher of the service.
func WithDiscovery(reg spmesh.Registry, service string) Option {
	return wrap(sock.WithDiscovery(reg, service))
}

// WithSubscribe subscribes a Subscriber to patterns from the start.
// Subscriber only: a Publisher refuses it.
func WithSubscribe(patterns ...string) Option {
	return sided(forSubscriber, "WithSubscribe", func(c *config) error {
		c.subs = append(c.subs, patterns...)
		return nil
	})
}

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

// WithBatching turns a Publisher's batching on (the default) or off. On, a
// burst of messages on one topic travels in batch frames (several messages
// per frame, at no added latency when idle: a lone message is sent at
// once); off, every message is its own frame, as subscribers of spmesh
// versions that predate batch frames require. Subscribers read both forms.
// Publisher only: a Subscriber refuses it.
func WithBatching(on bool) Option {
	return sided(forPublisher, "WithBatching", func(c *config) error {
		c.noBatch = !on
		return nil
	})
}

// WithTailInterval sets how long a [Publisher] waits, idle, after
// publishing on a topic before it sends that topic's last sequence number
// in a small tail frame (default [DefaultTailInterval]; 0: never), so that
// subscribers count the messages they missed at the end of a burst: within
// about twice the interval once the subscriber's connection has caught
// up. Close sends the tail frames at once. Subscribers of spmesh versions
// that predate tail frames count them as decode errors: give such a mesh's
// publishers WithTailInterval(0). Publisher only: a Subscriber refuses it.
func WithTailInterval(d time.Duration) Option {
	return sided(forPublisher, "WithTailInterval", func(c *config) error {
		if d < 0 || d > time.Hour || d > 0 && d < time.Millisecond {
			return sock.Invalid("WithTailInterval: %v out of range (0, or [1ms, 1h])", d)
		}
		c.tail = d
		return nil
	})
}

// SlowSubscriber is what a [Publisher] reports about a subscriber whose
// queue dropped messages (see [WithSlowSubscriber]).
type SlowSubscriber struct {
	Addr    string // the subscriber connection's remote address
	Dropped uint64 // messages dropped for it since it connected
	Since   uint64 // of which since the previous report for it
}

// WithSlowSubscriber makes a [Publisher] call f when its queue for a
// subscriber connection drops messages (like NATS's slow consumer
// error): at once on the first drop, then at most once a second per
// connection while drops go on; drops after a connection's last report
// are reported with its next drop, and are always counted in
// [Publisher.SubscriberDrops]. f runs on a goroutine of its own, never on
// the publish path; calls for different subscribers may run concurrently.
// Publisher only: a Subscriber refuses it.
func WithSlowSubscriber(f func(SlowSubscriber)) Option {
	return sided(forPublisher, "WithSlowSubscriber", func(c *config) error {
		if f == nil {
			return sock.Invalid("WithSlowSubscriber: nil func")
		}
		c.slow = f
		return nil
	})
}

// Gap is what a [Subscriber] reports when it finds messages missing (see
// [WithGapHandler]).
type Gap struct {
	Publisher uint64 // the publisher's id
	Topic     string
	// Missed is how many messages are missing: a hole in the sequence
	// numbers (dropped by the publisher's queue for this subscriber, by
	// this subscriber's socket, or lost with a connection), or, with
	// Local, messages this subscriber's own queue dropped because its
	// application did not take them (Topic is then that of the last one).
	Missed uint64
	// Seq is the sequence number that revealed the hole: the next message
	// received, or a tail frame's (Tail). 0 with Local.
	Seq   uint64
	Tail  bool // revealed by a tail frame (the end of a burst)
	Local bool // dropped by this subscriber's queue
}

// WithGapHandler makes a [Subscriber] call f for each gap it detects,
// from its reader goroutine, after the frame that revealed it: f must
// return quickly (while it runs, nothing is read, and the socket's queue
// may drop more). Local drops are reported once per frame. The gaps are
// also counted in [Subscriber.Stats]. Subscriber only: a Publisher
// refuses it.
func WithGapHandler(f func(Gap)) Option {
	return sided(forSubscriber, "WithGapHandler", func(c *config) error {
		if f == nil {
			return sock.Invalid("WithGapHandler: nil func")
		}
		c.gap = f
		return nil
	})
}

// WithBackpressure turns on lossless mode (beyond NATS core, which drops
// for slow consumers). On a [Publisher]: when its queue for a subscriber
// is full, it waits for room instead of dropping, so Publish blocks
// (bounded by its ctx) and the publisher's rate follows its slowest
// subscriber; a subscriber that takes nothing for stall is cut off (its
// connection closed, counted in Stats.SendTimeouts, its messages in
// Dropped and [Publisher.SubscriberDrops]) so that it cannot hold the
// others back forever; it may reconnect. On a [Subscriber]: when its
// queue for the application is full, it stops reading its connections
// (TCP flow control holds the publisher back) instead of dropping. Both
// sides need it for no loss; a publisher in this mode with subscribers
// not in it still never drops on its side. stall is in [1ms, 1h].
func WithBackpressure(stall time.Duration) Option {
	return optionFunc(func(c *config) error {
		if stall < time.Millisecond || stall > time.Hour {
			return sock.Invalid("WithBackpressure: stall %v out of range [1ms, 1h]", stall)
		}
		c.hold = stall
		return nil
	})
}

// DefaultShedWait is a [Publisher]'s default [WithShedWait].
const DefaultShedWait = sock.DefaultShedWait

// WithShedWait sets how long a [Publisher] waits, once per shedding
// episode, for a full subscriber queue to drain before dropping (see
// "Queues" in the package doc): when its queue for a subscriber fills,
// the first frame that finds it full waits up to d for it to drain to
// half (Publish may block meanwhile, bounded by its ctx, as when it runs
// ahead of its sender); drained in time, the frame is queued and nothing
// is lost; not, it is dropped and so is every new frame for that
// subscriber, at once, until its queue has drained to half. A stalled
// subscriber thus costs the publisher one wait of d, not one per message.
// 0 drops at once (mangos PUB, ZeroMQ). Default [DefaultShedWait] (5
// ms); d is in [0, 1s]. Ignored with [WithBackpressure], which waits
// for room instead. Publisher only: a Subscriber refuses it.
func WithShedWait(d time.Duration) Option {
	return sided(forPublisher, "WithShedWait", func(c *config) error {
		if d < 0 || d > time.Second {
			return sock.Invalid("WithShedWait: %v out of range [0, 1s]", d)
		}
		c.shedWait, c.shedSet = d, true
		return nil
	})
}

// WithBareFrames makes a [Publisher] or [Subscriber] send and accept bare
// SP frames, the NNG and nanomsg convention, so that it talks to
// unmodified NNG, nanomsg or pynng PUB/SUB programs: a frame is the topic's
// bytes immediately followed by the body's (the codec's output; use
// [spmesh.Raw] for plain bytes), with no separator and no spmesh envelope.
//
// A bare Publisher takes any topic ("" included: the frame is the body
// alone), sends every message as its own frame (no batch frames, whatever
// [WithBatching] says) and sends no tail frames. A bare Subscriber's
// subscriptions are byte prefixes of the frame, as a stock SUB's are (no
// wildcards: "images." matches "images.ready" and "images.x.y"; ""
// matches every frame): a frame that starts with several of them is
// delivered once, with Topic set to the longest that matches and Data to
// the bytes after it (with a "" subscription alone, Data is the whole
// frame). It sends no interest frames (NNG's PUB closes a connection on
// which it receives anything), so publishers filter nothing for it: it
// gets every frame and filters them itself.
//
// What a bare socket keeps: the size limits (TooLarge counted), the queue
// bounds and their counted drops ([Publisher.SubscriberDrops], the
// subscriber's Dropped), [Publisher.WaitPeers], and lossless mode
// ([WithBackpressure]). What it loses, being only bytes: headers (a publish
// with headers fails), message ids, the publisher's id, sequence numbers
// and so the gaps (a bare Subscriber counts only its own queue's drops,
// reported to [WithGapHandler] as Local gaps), and the send time
// ([Message.Time] is zero). Both ends must agree: a bare Subscriber takes
// spmesh envelopes (and their batch and tail frames) as opaque bytes, and
// an enveloped Subscriber discards bare frames: as undecodable (counted in
// DecodeErrors), or uncounted by its prefix filter when subscribed to a
// literal topic (its filter is the topic and a 0 byte). See WIRE.md.
func WithBareFrames() Option {
	return optionFunc(func(c *config) error {
		c.bare = true
		return nil
	})
}
