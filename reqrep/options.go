package reqrep

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
)

// Option configures a [Requester] or a [Replier]. Options that apply to one
// side only say so; giving one to the other side is an error wrapping
// [spmesh.ErrInvalidOption].
type Option interface{ apply(*config) error }

// Defaults.
const (
	// DefaultConcurrency is the number of requests a Replier handles at once.
	DefaultConcurrency = 32
)

type side uint8

const (
	forRequester side = 1 << iota
	forReplier
)

type config struct {
	sock sock.Settings
	side side // the type being configured

	// Requester.
	attemptTimeout time.Duration
	maxAttempts    int
	wait           bool

	// Both.
	bare bool

	// Replier.
	concurrency int
	credit      int // 0: concurrency

	// Requester.
	peerCredit int
}

type optionFunc func(*config) error

func (f optionFunc) apply(c *config) error { return f(c) }

func wrap(o sock.Option) Option { return optionFunc(func(c *config) error { return o(&c.sock) }) }

func sided(s side, name string, f func(*config) error) Option {
	return optionFunc(func(c *config) error {
		if err := sock.OnlyFor(name, uint8(s), uint8(c.side), c.side.String()); err != nil {
			return err
		}
		return f(c)
	})
}

func (s side) String() string {
	if s == forRequester {
		return "Requester"
	}
	return "Replier"
}

func newConfig(s side, opts []Option) (config, error) {
	c := config{side: s, sock: sock.DefaultSettings(), concurrency: DefaultConcurrency, peerCredit: 2 * DefaultConcurrency}
	for _, o := range opts {
		if o == nil {
			return c, sock.Invalid("nil option")
		}
		if err := o.apply(&c); err != nil {
			return c, err
		}
	}
	if c.credit == 0 {
		c.credit = min(2*c.concurrency, 1<<16)
	}
	return c, nil
}

// WithCodec sets the payload codec (default [spmesh.Msgpack]). Both sides
// must use the same codec.
func WithCodec(c spmesh.Codec) Option { return wrap(sock.WithCodec(c)) }

// WithLogger sets the logger (silent by default). A Replier logs recovered
// handler panics at level Error; both sides log resends at level Debug.
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

// WithTracer traces every request: a Requester starts a client span per
// call (not per resend) and sends its trace context in the request's
// headers; a Replier's handler runs in the server span continuing it.
// Nothing without it; bare frames carry no headers, so no trace context.
// See [spmesh.Tracer] and package otelspmesh.
func WithTracer(t spmesh.Tracer) Option { return wrap(sock.WithTracer(t)) }

// WithMaxMessageSize sets the largest frame sent or accepted (default 8 MiB).
// A request over the Requester's own limit fails before it is encoded in
// full. A request over the Replier's limit (up to 16 times it, over
// spmesh's TCP transport) is discarded as it arrives and answered with an
// error carrying [spmesh.CodeTooLarge]: the call fails at once with an error
// that errors.Is [spmesh.ErrTooLarge], without resending; a reply over the
// Requester's limit fails the call the same way. A frame further past the
// receiver's limit closes the connection (the Requester then resends):
// give both sides the same limit.
func WithMaxMessageSize(n int) Option { return wrap(sock.WithMaxMessageSize(n)) }

// WithQueueLen sets the per-connection send queue of a Replier, in messages
// (default 1024).
func WithQueueLen(n int) Option { return wrap(sock.WithQueueLen(n)) }

// WithSendTimeout sets how long a Replier waits to queue a reply for a
// requester that is not reading (default 2s). Past it the reply is dropped
// and counted in Stats.SendTimeouts (and Dropped), and the connection to
// that requester is closed: it resends what it has no answer to. While one
// handler waits for a requester, its other replies wait at most 250ms, then
// are dropped without waiting. Replier only.
func WithSendTimeout(d time.Duration) Option {
	return sided(forReplier, "WithSendTimeout", func(c *config) error { return sock.WithSendTimeout(d)(&c.sock) })
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

// WithDiscovery wires by service name through reg: a Replier listens (on an
// ephemeral port of the registry's host unless given [WithListen]) and
// advertises itself; a Requester dials every replier of the service and
// hangs up on those that leave.
func WithDiscovery(reg spmesh.Registry, service string) Option {
	return wrap(sock.WithDiscovery(reg, service))
}

// WithAttemptTimeout makes a Requester resend a request that got no reply
// within d (default 0: no per-attempt timeout; a request is still resent
// when the connection carrying it drops). The caller's ctx bounds the whole
// call across attempts. Requester only.
func WithAttemptTimeout(d time.Duration) Option {
	return sided(forRequester, "WithAttemptTimeout", func(c *config) error {
		if d < 0 {
			return sock.Invalid("attempt timeout %v is negative", d)
		}
		c.attemptTimeout = d
		return nil
	})
}

// WithMaxAttempts bounds the attempts of one request: n >= 1 means at most
// n attempts in all (the first included); 0 means unbounded, the caller's
// ctx alone ends the call (the default); a negative n is refused. When the
// last attempt times out or loses its connection, the call fails with an
// error wrapping [spmesh.ErrTimeout]. pipeline.WithMaxAttempts means the
// same for a job's deliveries. Requester only.
func WithMaxAttempts(n int) Option {
	return sided(forRequester, "WithMaxAttempts", func(c *config) error {
		if n < 0 {
			return sock.Invalid("max attempts %d is negative", n)
		}
		c.maxAttempts = n
		return nil
	})
}

// WithWaitForReplier makes a Requester wait (until the caller's ctx ends)
// for a replier to connect instead of failing at once with
// [spmesh.ErrNoPeers]. A request whose connection drops while no other
// replier is connected then waits for one too. Requester only.
func WithWaitForReplier() Option {
	return sided(forRequester, "WithWaitForReplier", func(c *config) error {
		c.wait = true
		return nil
	})
}

// WithConcurrency sets how many requests a Replier handles at once (default
// [DefaultConcurrency]); each runs in its own long-lived goroutine. Further
// requests wait in the connections. Replier only.
func WithConcurrency(n int) Option {
	return sided(forReplier, "WithConcurrency", func(c *config) error {
		if n < 1 || n > 1<<16 {
			return sock.Invalid("concurrency %d out of range [1, 65536]", n)
		}
		c.concurrency = n
		return nil
	})
}

// WithCredit sets the credit a Replier announces: how many requests each
// requester may have outstanding with it at once (default twice its
// concurrency, [WithConcurrency]: one request waits ready for each handler,
// hiding the round trip between a reply and the next request). A
// requester sends a replier no more than its credit, so a larger credit
// queues more requests at the replier, a smaller one keeps them at the
// requester, free to go to whichever replier has room first. Replier only.
func WithCredit(n int) Option {
	return sided(forReplier, "WithCredit", func(c *config) error {
		if n < 1 || n > 1<<16 {
			return sock.Invalid("credit %d out of range [1, 65536]", n)
		}
		c.credit = n
		return nil
	})
}

// WithPeerCredit sets the credit a Requester assumes for a replier until
// that replier announces its own (in its first reply), and for repliers
// that never do (foreign SP REP peers): default twice
// [DefaultConcurrency], what a Replier with the default concurrency
// announces.
// Requester only.
func WithPeerCredit(n int) Option {
	return sided(forRequester, "WithPeerCredit", func(c *config) error {
		if n < 1 || n > 1<<16 {
			return sock.Invalid("peer credit %d out of range [1, 65536]", n)
		}
		c.peerCredit = n
		return nil
	})
}

// WithBareFrames makes a Requester or Replier send and accept bare SP
// messages: the body is exactly the application bytes (the codec's
// output; use [spmesh.Raw] for plain bytes), with no spmesh envelope, so
// that it talks to unmodified NNG, nanomsg or pynng REQ/REP programs. A
// bare socket keeps the SP request ids (a reply goes to its request),
// resends on an attempt timeout or a lost connection, and credit-based
// load spreading (with [WithPeerCredit] as every replier's credit). It
// loses what the envelope carries: headers (a call with headers fails),
// deadlines (the handler's ctx has none from the caller), message ids and
// attempts (a resend looks new to the replier: no de-duplication), and
// remote errors: a bare Replier whose handler fails sends no reply
// (counted in Stats().HandlerErrors and logged), so the caller times out or
// resends, as with an NNG REP program that does not answer. Both ends
// must agree: a bare Replier serves spmesh envelopes as opaque bytes, and
// an enveloped Requester refuses a bare reply (ErrDecode). With
// [WithDiscovery] they do: a bare Replier is advertised as bare, and a
// Requester dials only the repliers of its own framing (the others are
// counted in Stats().EndpointsRefused). See WIRE.md.
func WithBareFrames() Option {
	return optionFunc(func(c *config) error {
		c.bare = true
		return nil
	})
}
