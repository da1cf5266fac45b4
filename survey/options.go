package survey

import (
	"crypto/tls"
	"log/slog"
	"slices"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
)

// Option configures a [Surveyor] or a [Respondent] at construction. Options
// that apply to one side only say so; giving one to the other side is an
// error wrapping [spmesh.ErrInvalidOption].
type Option interface{ apply(*config) error }

// SurveyOption configures one survey, passed to [Surveyor.Survey]. Every
// SurveyOption is also an [Option]: given to [NewSurveyor], it sets the
// default for every survey.
type SurveyOption interface {
	Option
	applySurvey(*call) error
}

// DefaultTimeout is how long a survey collects answers unless
// [WithTimeout] or the caller's context says otherwise.
const DefaultTimeout = time.Second

// DefaultConcurrency is the number of surveys a [Respondent] answers at
// once unless [WithConcurrency] says otherwise.
const DefaultConcurrency = 8

type side uint8

const (
	forSurveyor side = iota + 1
	forRespondent
)

type config struct {
	side        side
	sock        sock.Settings
	call        call
	expectFunc  func() []string
	concurrency int
	bare        bool // WithBareFrames
}

// call is the per-survey configuration.
type call struct {
	timeout time.Duration
	expect  []string // nil: unknown
	// expectCall is set by a WithExpect given to this very survey.
	expectCall bool
	header     spmesh.Header // SurveyHeader's
}

type optionFunc func(*config) error

func (f optionFunc) apply(c *config) error { return f(c) }

// surveyOption applies to one survey, or, as an Option, to a Surveyor's
// defaults.
type surveyOption struct {
	name string
	f    func(*call) error
}

func (o surveyOption) apply(c *config) error {
	if err := only(c, forSurveyor, o.name); err != nil {
		return err
	}
	return o.f(&c.call)
}

func (o surveyOption) applySurvey(c *call) error { return o.f(c) }

// sided is an option for one side only.
func sided(s side, name string, f func(*config) error) Option {
	return optionFunc(func(c *config) error {
		if err := only(c, s, name); err != nil {
			return err
		}
		return f(c)
	})
}

func only(c *config, s side, name string) error {
	is := "Respondent"
	if c.side == forSurveyor {
		is = "Surveyor"
	}
	return sock.OnlyFor(name, uint8(s), uint8(c.side), is)
}

func wrap(o sock.Option) Option { return optionFunc(func(c *config) error { return o(&c.sock) }) }

func newConfig(s side, opts []Option) (config, error) {
	c := config{side: s, sock: sock.DefaultSettings(), call: call{timeout: DefaultTimeout}, concurrency: DefaultConcurrency}
	for _, o := range opts {
		if o == nil {
			return c, sock.Invalid("nil option")
		}
		if err := o.apply(&c); err != nil {
			return c, err
		}
	}
	if c.bare && c.side == forSurveyor {
		switch {
		case c.expectFunc != nil:
			return c, sock.Invalid("WithExpectFunc: %v", errBareExpect)
		case c.call.expect != nil:
			return c, sock.Invalid("WithExpect: %v", errBareExpect)
		}
	}
	return c, nil
}

// WithCodec sets the payload codec (default [spmesh.Msgpack]). Surveyor and
// respondents must agree on it.
func WithCodec(c spmesh.Codec) Option { return wrap(sock.WithCodec(c)) }

// WithLogger sets the logger (silent by default). A Respondent logs handler
// panics at Error level.
func WithLogger(l *slog.Logger) Option { return wrap(sock.WithLogger(l)) }

// WithListen listens on addr, e.g. "tcp://0.0.0.0:7001" or "inproc://name".
// A Surveyor usually listens and respondents dial it.
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

// WithTracer traces every survey: a Surveyor starts a client span per
// survey (ended when it ends) and sends its trace context in the
// question's headers; a Respondent's handler runs in the server span
// continuing it. Nothing without it; bare frames carry no headers, so no
// trace context. See [spmesh.Tracer] and package otelspmesh.
func WithTracer(t spmesh.Tracer) Option { return wrap(sock.WithTracer(t)) }

// WithMaxMessageSize sets the largest frame sent or accepted (default 8 MiB).
func WithMaxMessageSize(n int) Option { return wrap(sock.WithMaxMessageSize(n)) }

// WithQueueLen sets how many answers one survey buffers before further
// answers are dropped (and counted in Stats().Dropped), and the per-peer
// send queue (default 1024).
func WithQueueLen(n int) Option { return wrap(sock.WithQueueLen(n)) }

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

// WithDiscovery wires by service name through reg: a Surveyor listens and
// advertises itself, a Respondent dials every surveyor of the service.
func WithDiscovery(reg spmesh.Registry, service string) Option {
	return wrap(sock.WithDiscovery(reg, service))
}

// WithName sets a Respondent's name, which every answer carries
// ([Response.From]) and which [WithExpect] lists. The default is the host
// name plus a random suffix, unique per Respondent. Respondent only.
func WithName(name string) Option {
	return sided(forRespondent, "WithName", func(c *config) error { return sock.WithName(name)(&c.sock) })
}

// WithSendTimeout sets how long a Respondent waits to queue an answer for
// a surveyor that is not reading (default 2s). Past it the answer is
// dropped, counted in Stats.SendTimeouts (and Dropped), and the connection
// to that surveyor closed (it is redialed); while one handler waits for a
// surveyor, its other answers wait at most 250ms, then are dropped without
// waiting. Respondent only.
func WithSendTimeout(d time.Duration) Option {
	return sided(forRespondent, "WithSendTimeout", func(c *config) error { return sock.WithSendTimeout(d)(&c.sock) })
}

// WithConcurrency sets how many surveys a Respondent answers at once
// (default [DefaultConcurrency]), each on its own long-lived goroutine and
// mangos context; further surveys wait in the socket's queue. Respondent
// only.
func WithConcurrency(n int) Option {
	return sided(forRespondent, "WithConcurrency", func(c *config) error {
		if n < 1 || n > 1<<16 {
			return sock.Invalid("concurrency %d out of range [1, 65536]", n)
		}
		c.concurrency = n
		return nil
	})
}

// WithTimeout sets how long a survey collects answers (default
// [DefaultTimeout]). The caller's context deadline, when earlier, ends the
// survey first. Surveyor only.
func WithTimeout(d time.Duration) SurveyOption {
	return surveyOption{"WithTimeout", func(c *call) error {
		if d <= 0 {
			return sock.Invalid("survey timeout %v", d)
		}
		c.timeout = d
		return nil
	}}
}

// WithExpect names the respondents expected to answer. A survey that knows
// them finishes as soon as each has answered (declining counts as an
// answer) instead of waiting for its deadline, and [Responses.Missing]
// lists those that did not. An empty list means nobody is expected: the
// survey finishes at once. Given per survey, it overrides [WithExpectFunc];
// given to [NewSurveyor], it is the default when [WithExpectFunc] gives
// none. Surveyor only.
func WithExpect(names ...string) SurveyOption {
	names = slices.Clone(names)
	if names == nil {
		names = []string{}
	}
	return surveyOption{"WithExpect", func(c *call) error {
		for _, n := range names {
			if n == "" {
				return sock.Invalid("empty respondent name in expected set")
			}
		}
		c.expect, c.expectCall = names, true
		return nil
	}}
}

// WithExpectFunc makes a Surveyor ask f, at the start of every survey that
// has no [WithExpect] of its own, which respondents are expected. This is
// the seam through which discovery supplies the current members of a
// service; f returning nil means "unknown" (the survey runs to its
// deadline). f must be safe to call concurrently and quick. Surveyor only.
func WithExpectFunc(f func() []string) Option {
	return sided(forSurveyor, "WithExpectFunc", func(c *config) error {
		if f == nil {
			return sock.Invalid("WithExpectFunc: nil func")
		}
		c.expectFunc = f
		return nil
	})
}

// WithBareFrames makes a [Surveyor] or [Respondent] send and accept bare
// SP messages: the body is exactly the application bytes (the codec's
// output; use [spmesh.Raw] for plain bytes), with no spmesh envelope, so
// that it talks to unmodified NNG, nanomsg or pynng SURVEYOR/RESPONDENT
// programs. The survey id stays where the SP protocol puts it (its
// header), so answers still go to their survey, and the survey still ends
// at its deadline (counting late answers).
//
// What a bare socket loses is what the envelope carries: headers (a survey
// with [Surveyor.SurveyHeader] fails), the deadline (the respondent's handler ctx has
// none from the surveyor), the survey id and time ([Question].ID and Time
// are zero), the respondent's name, declines and remote errors. So a bare
// Surveyor's [Response] has From set to the respondent connection's
// address (e.g. "127.0.0.1:40312"; not a name), a zero Time, and never
// Declined or Err; and it cannot expect respondents by name:
// [WithExpect] and [WithExpectFunc] are refused, and with [WithDiscovery]
// a bare survey runs to its deadline. A bare Respondent whose handler
// fails, panics or declines sends no answer (counted in HandlerErrors, Panics or
// Declined, logged), as an NNG RESPONDENT program that does not answer.
// Both ends must agree: a bare Respondent takes an spmesh envelope as an
// opaque question, an enveloped Surveyor discards bare answers (counted in
// DecodeErrors), and an enveloped Respondent answers a bare question with
// an error envelope, which a bare Surveyor returns as opaque answer bytes.
// See WIRE.md.
func WithBareFrames() Option {
	return optionFunc(func(c *config) error {
		c.bare = true
		return nil
	})
}
