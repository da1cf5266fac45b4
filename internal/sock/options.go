package sock

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sptcp"
)

// Settings are the options every spmesh socket shares. The pattern packages
// embed them in their own config and re-export one-line wrappers over the
// Option constructors below.
type Settings struct {
	Codec        spmesh.Codec
	Logger       *slog.Logger
	Listen       []string
	Dial         []string
	TLS          *tls.Config
	MaxMsgSize   int // bytes; larger frames are refused on send and receive
	RecvQueue    int // messages buffered on receive, per socket
	SendQueue    int // messages buffered on send, per peer
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	Registry     spmesh.Registry
	Service      string
	Name         string // survey respondents only: the name a response carries (wire key 10) and the respondent announces
	StockTCP     bool   // use mangos' own tcp transport instead of sptcp

	// Connection limits of spmesh's TCP transport (tcp://, tls+tcp://);
	// a zero timeout means none.
	MaxConns         int           // connections per listener
	FrameTimeout     time.Duration // for a frame to arrive once begun (+1 s per 128 KiB)
	IdleTimeout      time.Duration // for an accepted connection to exchange a first frame
	HandshakeTimeout time.Duration // for connecting plus the TLS and SP handshakes
	limitsSet        string        // the first connection limit option given, if any

	// SendTimeout bounds how long a serving worker (Replier, Worker,
	// Respondent) waits to queue a reply for a peer that does not take it.
	SendTimeout time.Duration
	// QueueBytes bounds the bytes held by a receive queue (Inbox), and
	// sizes the socket's own receive queue from it (see Inbox).
	QueueBytes int

	// RequireTLS refuses plaintext listens and dials (WithRequireTLS).
	RequireTLS bool

	// Tracer, when set, is told of every message sent and received and
	// carries trace context in its header (WithTracer; see trace.go).
	Tracer spmesh.Tracer
}

// Defaults for Settings.
const (
	DefaultMaxMsgSize   = 8 << 20
	DefaultQueue        = 1024
	DefaultReconnectMin = 50 * time.Millisecond
	DefaultReconnectMax = 2 * time.Second

	DefaultMaxConns         = sptcp.MaxConns
	DefaultFrameTimeout     = sptcp.FrameTimeout
	DefaultIdleTimeout      = sptcp.IdleTimeout
	DefaultHandshakeTimeout = sptcp.HandshakeTimeout

	// DefaultSendTimeout is the default SendTimeout: a peer on a slow LAN
	// takes a reply well within it, a peer that stopped reading costs a
	// serving worker at most this long, once (see Server).
	DefaultSendTimeout = 2 * time.Second
	// DefaultQueueBytes is the default QueueBytes.
	DefaultQueueBytes = 16 << 20
)

// DefaultSettings returns the settings before options are applied.
func DefaultSettings() Settings {
	return Settings{
		Codec:        spmesh.Msgpack,
		Logger:       slog.New(slog.DiscardHandler),
		MaxMsgSize:   DefaultMaxMsgSize,
		RecvQueue:    DefaultQueue,
		SendQueue:    DefaultQueue,
		ReconnectMin: DefaultReconnectMin,
		ReconnectMax: DefaultReconnectMax,

		MaxConns:         DefaultMaxConns,
		FrameTimeout:     DefaultFrameTimeout,
		IdleTimeout:      DefaultIdleTimeout,
		HandshakeTimeout: DefaultHandshakeTimeout,

		SendTimeout: DefaultSendTimeout,
		QueueBytes:  DefaultQueueBytes,
	}
}

// Option changes Settings; it returns an error wrapping
// spmesh.ErrInvalidOption for a bad value.
type Option func(*Settings) error

// Invalid returns an error wrapping spmesh.ErrInvalidOption.
func Invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{spmesh.ErrInvalidOption}, args...)...)
}

// WithCodec sets the payload codec.
func WithCodec(c spmesh.Codec) Option {
	return func(s *Settings) error {
		if c == nil {
			return Invalid("nil codec")
		}
		s.Codec = c
		return nil
	}
}

// WithLogger sets the logger (silent by default).
func WithLogger(l *slog.Logger) Option {
	return func(s *Settings) error {
		if l == nil {
			return Invalid("nil logger")
		}
		s.Logger = l
		return nil
	}
}

// WithListen adds an address to listen on at construction.
func WithListen(addr string) Option {
	return func(s *Settings) error {
		if err := CheckAddr(addr); err != nil {
			return err
		}
		s.Listen = append(s.Listen, addr)
		return nil
	}
}

// WithDial adds an address to dial at construction.
func WithDial(addr string) Option {
	return func(s *Settings) error {
		if err := CheckAddr(addr); err != nil {
			return err
		}
		s.Dial = append(s.Dial, addr)
		return nil
	}
}

// WithTLS sets the TLS configuration used by tls+tcp:// and wss:// addresses.
func WithTLS(c *tls.Config) Option {
	return func(s *Settings) error {
		if c == nil {
			return Invalid("nil TLS config")
		}
		s.TLS = c
		return nil
	}
}

// WithMaxMessageSize sets the largest frame sent or accepted.
func WithMaxMessageSize(n int) Option {
	return func(s *Settings) error {
		if n < 64 {
			return Invalid("max message size %d below 64 bytes", n)
		}
		s.MaxMsgSize = n
		return nil
	}
}

// WithQueueLen sets the receive and send queue lengths, in messages.
func WithQueueLen(n int) Option {
	return func(s *Settings) error {
		if n < 1 || n > 1<<20 {
			return Invalid("queue length %d out of range [1, 1048576]", n)
		}
		s.RecvQueue, s.SendQueue = n, n
		return nil
	}
}

// WithSendTimeout sets how long a serving worker (Replier, Worker,
// Respondent) waits to queue a reply, ack or answer for a peer that is not
// taking them (default DefaultSendTimeout). Past it the reply is dropped and
// counted in Stats.SendTimeouts, and the connection to that peer is closed
// (the peer resends what it has no answer to). While one worker waits for
// a peer, other replies to it wait at most 250ms (at most half the
// timeout), and once that worker has waited that long they are dropped
// without being tried (also counted). See Server.
func WithSendTimeout(d time.Duration) Option {
	return func(s *Settings) error {
		if d <= 0 || d > time.Hour {
			return Invalid("WithSendTimeout: %v out of range (0, 1h]", d)
		}
		s.SendTimeout = d
		return nil
	}
}

// WithQueueBytes bounds the bytes of messages a receiving socket
// (Subscriber, Puller) holds in its queue for the application, on top of
// the message count of WithQueueLen (default DefaultQueueBytes). A message
// larger than the bound is still queued when the queue is empty. On a
// serving socket (Replier, Worker, Respondent) it also sizes the reply
// queue of each peer: see ServerSendQueue.
func WithQueueBytes(n int) Option {
	return func(s *Settings) error {
		if n < 4<<10 || n > 1<<40 {
			return Invalid("WithQueueBytes: %d out of range [4096, 2^40]", n)
		}
		s.QueueBytes = n
		return nil
	}
}

// ServerQueueFloor is the least number of replies a serving socket
// (Replier, Worker, Respondent) queues per peer: see ServerSendQueue.
const ServerQueueFloor = 8

// ServerSendQueue is how many replies, acks or answers a serving socket
// queues per peer (mangos' REP and RESPONDENT count messages, not bytes):
// QueueBytes / MaxMsgSize, at least ServerQueueFloor, at most SendQueue.
// So the replies held for a peer that does not read them are at most
// max(QueueBytes, ServerQueueFloor x MaxMsgSize), plus the ones the serving
// workers hold while waiting (see Server), whatever the message size: with
// the defaults, 8 replies per peer (2 MiB of 256 KiB replies, where 1024
// replies held 256 MiB). Replies beyond it wait for room as a full queue
// does (Settings.SendTimeout), then are dropped and counted.
func ServerSendQueue(s Settings) int {
	n := ServerQueueFloor
	if s.MaxMsgSize > 0 && s.QueueBytes/s.MaxMsgSize > n {
		n = s.QueueBytes / s.MaxMsgSize
	}
	return max(1, min(n, s.SendQueue))
}

// WithReconnect sets the dial retry backoff: first min, doubling to max.
func WithReconnect(min, max time.Duration) Option {
	return func(s *Settings) error {
		if min <= 0 || max < min {
			return Invalid("reconnect backoff min %v max %v", min, max)
		}
		s.ReconnectMin, s.ReconnectMax = min, max
		return nil
	}
}

// WithDiscovery wires the socket by service name through reg.
func WithDiscovery(reg spmesh.Registry, service string) Option {
	return func(s *Settings) error {
		if reg == nil {
			return Invalid("nil registry")
		}
		if service == "" || strings.ContainsAny(service, " \t\n\x00") {
			return Invalid("service name %q", service)
		}
		s.Registry, s.Service = reg, service
		return nil
	}
}

// WithName sets the name this socket gives itself: a survey respondent
// sends it in every response (wire key 10, from) and announces it through
// discovery. No other socket sends a name.
func WithName(name string) Option {
	return func(s *Settings) error {
		if name == "" {
			return Invalid("empty name")
		}
		s.Name = name
		return nil
	}
}

var schemes = []string{"tcp://", "tls+tcp://", "ipc://", "inproc://", "ws://", "wss://"}

// CheckAddr validates an address's scheme.
func CheckAddr(addr string) error {
	for _, p := range schemes {
		if strings.HasPrefix(addr, p) && len(addr) > len(p) {
			return nil
		}
	}
	return Invalid("address %q: want one of %v followed by an address", addr, schemes)
}

// WithStockTCP makes tcp:// and tls+tcp:// addresses use mangos' stock TCP
// transport (one write system call per message) instead of spmesh's
// batching one. Both speak the same SP/TCP wire format.
//
// The stock transport has none of the connection limits (WithMaxConns,
// WithFrameTimeout, WithIdleTimeout, WithHandshakeTimeout; it allocates a
// frame's claimed size up front): giving it together with one of them is
// an error.
func WithStockTCP() Option {
	return func(s *Settings) error {
		if s.limitsSet != "" {
			return Invalid("WithStockTCP: %s cannot apply to the stock TCP transport", s.limitsSet)
		}
		s.StockTCP = true
		return nil
	}
}

// connLimit is the common part of the connection limit options.
func connLimit(name string, f func(*Settings) error) Option {
	return func(s *Settings) error {
		if s.StockTCP {
			return Invalid("%s cannot apply to the stock TCP transport (WithStockTCP)", name)
		}
		if err := f(s); err != nil {
			return err
		}
		if s.limitsSet == "" {
			s.limitsSet = name
		}
		return nil
	}
}

// WithMaxConns sets how many connections each listener holds at once,
// handshaking or established (default DefaultMaxConns); past it new
// connections are closed at once and counted in Stats.ConnsRefused.
func WithMaxConns(n int) Option {
	return connLimit("WithMaxConns", func(s *Settings) error {
		if n < 1 || n > 1<<20 {
			return Invalid("WithMaxConns: %d out of range [1, 1048576]", n)
		}
		s.MaxConns = n
		return nil
	})
}

// WithFrameTimeout sets how long a frame may take to arrive once its first
// byte did, plus one second per 128 KiB it claims (default
// DefaultFrameTimeout); 0 means no limit. A connection past it is closed
// and counted in Stats.ConnTimeouts.
func WithFrameTimeout(d time.Duration) Option {
	return connLimit("WithFrameTimeout", func(s *Settings) error {
		if d < 0 {
			return Invalid("WithFrameTimeout: negative duration %v", d)
		}
		s.FrameTimeout = d
		return nil
	})
}

// WithIdleTimeout sets how long a connection accepted by a listener may
// stay without exchanging a first frame (default DefaultIdleTimeout); 0
// means no limit. Connections that exchanged a frame, connections this
// socket dialed and peers that never send (subscribers, pullers) are never
// closed for idling. A connection past it is closed and counted in
// Stats.ConnTimeouts; its peer, if it is spmesh, redials.
func WithIdleTimeout(d time.Duration) Option {
	return connLimit("WithIdleTimeout", func(s *Settings) error {
		if d < 0 {
			return Invalid("WithIdleTimeout: negative duration %v", d)
		}
		s.IdleTimeout = d
		return nil
	})
}

// WithHandshakeTimeout sets how long connecting plus the TLS and SP
// handshakes may take, on both sides (default DefaultHandshakeTimeout).
func WithHandshakeTimeout(d time.Duration) Option {
	return connLimit("WithHandshakeTimeout", func(s *Settings) error {
		if d <= 0 {
			return Invalid("WithHandshakeTimeout: %v, want > 0", d)
		}
		s.HandshakeTimeout = d
		return nil
	})
}

// limits maps the settings to the transport's.
func (s *Settings) limits() sptcp.Limits {
	off := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	return sptcp.Limits{
		MaxConns:         s.MaxConns,
		FrameTimeout:     off(s.FrameTimeout),
		IdleTimeout:      off(s.IdleTimeout),
		HandshakeTimeout: off(s.HandshakeTimeout),
	}
}

// WithRequireTLS refuses plaintext on this socket, as the registry's
// spmesh.TLSPolicy.Require does for the sockets wired through it: listening
// or dialing tcp://, ws://, ipc:// or inproc:// is an error, and discovered
// endpoints are dialed only on tls+tcp:// and wss:// (the others are
// counted in Stats.EndpointsRefused and logged). It needs a TLS config
// (WithTLS, or the registry's) to connect at all.
func WithRequireTLS() Option {
	return func(s *Settings) error {
		s.RequireTLS = true
		return nil
	}
}

// OnlyFor is the one side check of the pattern packages' options: an
// option named name that fits the types whose bits are set in fits, given
// to the type whose bit is is (named isName), is refused with an error
// wrapping spmesh.ErrInvalidOption that names the option and the type.
func OnlyFor(name string, fits, is uint8, isName string) error {
	if fits&is != 0 {
		return nil
	}
	return Invalid("%s does not apply to a %s", name, isName)
}

// NilFunc reports whether h is a nil func in a non-nil interface (such as
// HandlerFunc(nil)), which a constructor refuses instead of panicking on
// every call. Constructors only: it uses reflection.
func NilFunc(h any) bool {
	v := reflect.ValueOf(h)
	return !v.IsValid() || v.Kind() == reflect.Func && v.IsNil()
}
