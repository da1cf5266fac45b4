package pubsub

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
)

// Option configures a [Publisher] or a [Subscriber].
type Option interface{ apply(*config) error }

type config struct {
	sock    sock.Settings
	subs    []string
	noBatch bool
}

type optionFunc func(*config) error

func (f optionFunc) apply(c *config) error { return f(c) }

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

func newConfig(opts []Option) (config, error) {
	c := config{sock: sock.DefaultSettings()}
	c.sock.RecvQueue, c.sock.SendQueue = DefaultQueueLen, DefaultQueueLen
	c.sock.QueueBytes = DefaultQueueBytes
	for _, o := range opts {
		if o == nil {
			return c, sock.Invalid("nil option")
		}
		if err := o.apply(&c); err != nil {
			return c, err
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
func WithSubscribe(patterns ...string) Option {
	return optionFunc(func(c *config) error {
		for _, p := range patterns {
			if _, err := parsePattern(p); err != nil {
				return sock.Invalid("subscription: %v", err)
			}
		}
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
// versions that predate batch frames require. Subscribers read both forms;
// the option does nothing to them.
func WithBatching(on bool) Option {
	return optionFunc(func(c *config) error {
		c.noBatch = !on
		return nil
	})
}
