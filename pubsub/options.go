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

func newConfig(opts []Option) (config, error) {
	c := config{sock: sock.DefaultSettings()}
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

// WithTLS sets the TLS configuration for tls+tcp:// and wss:// addresses.
func WithTLS(c *tls.Config) Option { return wrap(sock.WithTLS(c)) }

// WithMaxMessageSize sets the largest frame sent or accepted (default 8 MiB).
func WithMaxMessageSize(n int) Option { return wrap(sock.WithMaxMessageSize(n)) }

// WithQueueLen sets the receive and per-peer send queues (default 1024):
// in frames on the sockets (a batch frame carries up to 256 messages, at
// most 8 KiB), in messages on a subscriber's channel. A subscriber that
// falls further behind drops.
func WithQueueLen(n int) Option { return wrap(sock.WithQueueLen(n)) }

// WithQueueBytes bounds the bytes of the messages a subscriber holds for
// the application (default 16 MiB), on top of [WithQueueLen]. When either
// bound is reached the oldest queued messages are dropped to make room,
// counted as gaps of their publisher (and in Dropped). A message larger
// than the bound is still queued, alone. A Publisher ignores it.
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
