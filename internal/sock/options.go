package sock

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spmesh/spmesh"
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
	Name         string // this socket's name on the wire (respondents, workers)
	StockTCP     bool   // use mangos' own tcp transport instead of sptcp
}

// Defaults for Settings.
const (
	DefaultMaxMsgSize   = 8 << 20
	DefaultQueue        = 1024
	DefaultReconnectMin = 50 * time.Millisecond
	DefaultReconnectMax = 2 * time.Second
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

// WithName sets the name this socket gives itself on the wire.
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
func WithStockTCP() Option {
	return func(s *Settings) error {
		s.StockTCP = true
		return nil
	}
}
