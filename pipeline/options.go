package pipeline

import (
	"crypto/tls"
	"fmt"
	"log/slog"
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
	// The at-least-once half adds its targets here (forProducer, forWorker).

	forAll = ^target(0)
)

func (t target) String() string {
	switch t {
	case forPusher:
		return "Pusher"
	case forPuller:
		return "Puller"
	}
	return fmt.Sprintf("target(%d)", uint8(t))
}

// config is everything the options can set, for every type of the package.
// Each type reads only its own part; add a part per new type rather than
// mixing fields.
type config struct {
	sock   sock.Settings // every type: codec, addresses, queues, discovery
	pusher pusherConfig  // Pusher only

	// At-least-once half (Producer/Worker): add its parts here, e.g.
	// producer producerConfig and worker workerConfig (attempt/ack timeout,
	// max attempts, concurrency, dead letter), with their defaults set in
	// newConfig.
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
	if o.fits&t == 0 {
		return sock.Invalid("%s does not apply to a %v", o.name, t)
	}
	return o.set(c)
}

func wrap(o sock.Option) Option {
	return option{fits: forAll, set: func(c *config) error { return o(&c.sock) }}
}

// newConfig applies opts for a t over the defaults.
func newConfig(t target, opts []Option) (config, error) {
	c := config{sock: sock.DefaultSettings()}
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

// WithTLS sets the TLS configuration for tls+tcp:// and wss:// addresses.
func WithTLS(c *tls.Config) Option { return wrap(sock.WithTLS(c)) }

// WithMaxMessageSize sets the largest frame sent or accepted (default 8 MiB).
func WithMaxMessageSize(n int) Option { return wrap(sock.WithMaxMessageSize(n)) }

// WithQueueLen sets how many messages a socket buffers (default 1024): on a
// [Pusher], pushes accepted but not yet handed to a puller; on a [Puller],
// messages received but not yet taken by the application. A Pusher whose
// queue is full blocks (or, with [WithNonBlocking], fails).
func WithQueueLen(n int) Option { return wrap(sock.WithQueueLen(n)) }

// WithReconnect sets the dial retry backoff (default 50ms doubling to 2s).
func WithReconnect(min, max time.Duration) Option { return wrap(sock.WithReconnect(min, max)) }

// WithDiscovery wires by service name through reg: a [Puller] listens and
// advertises itself as a puller of service; a [Pusher] dials every puller
// of service, and hangs up when one is withdrawn.
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
