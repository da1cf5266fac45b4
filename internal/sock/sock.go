// Package sock is all of spmesh's mangos glue, written once: opening sockets
// of each protocol, listening and dialing (asynchronous, with reconnect
// backoff), transports, error translation, context deadlines, counters, and
// the peer set that follows a discovery registry. Nothing else in spmesh
// imports mangos (but sptcp, the TCP transport sock plugs in; the test
// TestMangosSealedInSock checks the import graph): the pattern packages
// hold frames as Frame, test errors with IsClosed, IsRecvTimeout and
// IsCanceled before Err translates them, set options through Socket
// methods (Subscribe, Quiet, SetRecvQueue), see connections through
// PipeFunc, run surveys on SurveyCtx, and send through Fanout, Spread,
// Dispatch and Server, whose mangos protocol methods are not exported.
//
// Transport security (policy.go) is applied here, once for every pattern:
// a socket combines its own WithTLS/WithRequireTLS with its registry's
// spmesh.TLSPolicy. With TLS configured a binder given no address listens
// on tls+tcp://, and a connector refuses discovered tcp:// and ws://
// endpoints; with Require no plaintext listen or dial is allowed at all;
// with VerifyNode each dial requires the certificate to name the node that
// advertised the endpoint. inproc:// and ipc:// endpoints advertised by
// another node are never dialed. Each refused endpoint is counted in
// Stats.EndpointsRefused, recorded as LastError and logged once while it
// stays advertised; it is not retried. NoPeers and Explain give callers
// that reach nobody the last connection error.
package sock

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/logx"
	"github.com/spmesh/spmesh/internal/sptcp"
	"github.com/spmesh/spmesh/internal/wire"
	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/pull"
	"go.nanomsg.org/mangos/v3/protocol/rep"
	"go.nanomsg.org/mangos/v3/protocol/req"
	"go.nanomsg.org/mangos/v3/protocol/respondent"
	"go.nanomsg.org/mangos/v3/protocol/surveyor"

	// The transports spmesh speaks.
	_ "go.nanomsg.org/mangos/v3/transport/inproc"
	_ "go.nanomsg.org/mangos/v3/transport/ipc"
	_ "go.nanomsg.org/mangos/v3/transport/tcp"
	_ "go.nanomsg.org/mangos/v3/transport/tlstcp"
	_ "go.nanomsg.org/mangos/v3/transport/ws"
	_ "go.nanomsg.org/mangos/v3/transport/wss"
)

// Proto is a mangos protocol.
type Proto int

// The protocols.
const (
	Pub Proto = iota
	Sub
	Req
	Rep
	Push
	Pull
	Surveyor
	Respondent
	// Dispatcher is spmesh's REQ: same wire protocol as Req, but the
	// socket chooses each request's peer (req.go). Req stays mangos' REQ,
	// for raw use.
	Dispatcher
	// SubHold is SUB whose full receive queue holds the connections back
	// instead of dropping (sub.go): for pub/sub with backpressure.
	SubHold
)

// open opens p's mangos socket; spmesh's own protocols count the bytes
// of the frames they send and receive in c.
func (p Proto) open(c *Counters) (mangos.Socket, error) {
	switch p {
	case Pub:
		return newPubSocket(c), nil // mangos' PUB, counting its drops (pub.go)
	case Sub:
		return newSubSocket(false, c), nil // mangos' SUB, announcing its prefixes (sub.go)
	case Req:
		return req.NewSocket()
	case Rep:
		return rep.NewSocket()
	case Push:
		return newPushSocket(c), nil // round robin over pullers with room (push.go)
	case Pull:
		return pull.NewSocket()
	case Surveyor:
		return surveyor.NewSocket()
	case Respondent:
		return respondent.NewSocket()
	case Dispatcher:
		return newReqSocket(c), nil
	case SubHold:
		return newSubSocket(true, c), nil
	}
	return nil, fmt.Errorf("spmesh: unknown protocol %d", p)
}

// Wiring says how a socket takes part in discovery: a binder advertises
// itself in role Bind; a connector dials every endpoint advertised in role
// Watch; a socket with Announce advertises its name (Settings.Name) in that
// role, for peers that want to know who is there (survey respondents).
// Any may be empty.
type Wiring struct {
	Bind     spmesh.Role
	Watch    spmesh.Role
	Announce spmesh.Role
	// Before, if set, runs on the socket before any listen or dial (e.g.
	// a subscriber's first subscriptions, announced on connecting). Its
	// error is returned by Open as it is: the Socket methods it calls
	// translate their own.
	Before func(*Socket) error
	// Bare: the socket speaks bare frames (WithBareFrames). Its endpoints
	// are advertised with Endpoint.Bare set, and it dials only the watched
	// endpoints whose framing matches its own (see bare_discovery.go).
	Bare bool
}

// Counters are a socket's statistics, updated atomically. Their meaning is
// documented on spmesh.Stats.
type Counters struct {
	Sent, Received, Dropped, Resent, DecodeErrors      atomic.Uint64
	TooLarge, SendTimeouts, ConnsRefused, ConnTimeouts atomic.Uint64
	HandshakeErrors, EndpointsRefused                  atomic.Uint64
	// BytesSent and BytesReceived: frame bodies written to and read from
	// connections, counted where the protocol hands a frame to a
	// connection or takes one from it (pub.go, push.go, req.go, sub.go,
	// server.go, inbox.go, control.go).
	BytesSent, BytesReceived atomic.Uint64
	// DroppedQueueFull and DroppedClosed: the drops (also in Dropped)
	// whose cause is known where they are counted.
	DroppedQueueFull, DroppedClosed atomic.Uint64
	// The other causes of Dropped (see Drop and spmesh.Stats).
	DroppedTooLarge, DroppedSendTimeout, DroppedExpired, DroppedGap, DroppedLate atomic.Uint64
	// Draining: Drain was called (spmesh.Stats.Draining).
	Draining atomic.Bool

	lastErr atomic.Pointer[string]
}

// SetLastError records err (with the peer's address) as the socket's last
// connection-level error.
func (c *Counters) SetLastError(addr string, err error) {
	s := addr + ": " + err.Error()
	c.lastErr.Store(&s)
}

// LastError returns what SetLastError last recorded, or "".
func (c *Counters) LastError() string {
	if p := c.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// Socket is one mangos socket with spmesh's settings applied. The mangos
// socket itself stays inside this package: the pattern packages reach it
// through Socket's methods, frames (Frame) and the protocol helpers
// (Fanout, Spread, Dispatch, Server, Inbox, SurveyCtx).
type Socket struct {
	m        mangos.Socket
	Settings Settings
	C        Counters

	closed   atomic.Bool
	peers    atomic.Int64
	ids      idGen
	lastSize atomic.Int64 // previous frame's size, to size the next buffer

	mu        sync.Mutex
	dialers   map[string]*dialer // by address
	hungup    map[mangos.Dialer]bool
	listeners []mangos.Listener
	bound     []string
	withdraw  []func()
	stopWatch func()
	pipeHooks []func(mangos.PipeEvent, mangos.Pipe)
	wg        sync.WaitGroup
	obs       *observer    // what the transport reports: see observe.go
	logs      logx.Limiter // every log of a refused or dropped peer's traffic
	wake      peerSignal   // signalled on every connection change: see wait.go
	pol       policy       // transport security: see policy.go
}

type dialer struct {
	d    mangos.Dialer
	pipe mangos.Pipe
}

// Open opens a socket of protocol p, applies s, and wires it: static listens
// and dials from s, then discovery per w when s has a registry.
func Open(p Proto, s Settings, w Wiring) (*Socket, error) {
	so := &Socket{dialers: map[string]*dialer{}, hungup: map[mangos.Dialer]bool{}}
	m, err := p.open(&so.C)
	if err != nil {
		return nil, Err(err)
	}
	pol, err := resolvePolicy(&s)
	if err != nil {
		m.Close()
		return nil, err
	}
	so.m, so.Settings, so.pol = m, s, pol
	so.obs = newObserver(so)
	so.ids.init()
	opts := map[string]any{
		mangos.OptionMaxRecvSize:      s.MaxMsgSize,
		mangos.OptionReconnectTime:    s.ReconnectMin,
		mangos.OptionMaxReconnectTime: s.ReconnectMax,
		mangos.OptionDialAsynch:       true,
	}
	for k, v := range opts {
		if err := m.SetOption(k, v); err != nil {
			m.Close()
			return nil, fmt.Errorf("spmesh: set %s: %w", k, Err(err))
		}
	}
	// Queue lengths: not every protocol has both; ignore the ones it lacks.
	_ = m.SetOption(mangos.OptionReadQLen, s.RecvQueue)
	_ = m.SetOption(optQueueBytes, s.QueueBytes) // SUB: its frame queue in bytes too (sub.go)
	sendQ := s.SendQueue
	if p == Rep || p == Respondent {
		sendQ = ServerSendQueue(s) // replies per peer, bounded in bytes too
	}
	_ = m.SetOption(mangos.OptionWriteQLen, sendQ)
	m.SetPipeEventHook(so.pipeEvent)
	if w.Before != nil {
		if err := w.Before(so); err != nil {
			so.Close()
			return nil, err
		}
	}
	if err := so.wire(w); err != nil {
		so.Close()
		return nil, err
	}
	return so, nil
}

func (so *Socket) wire(w Wiring) error {
	s := &so.Settings
	for _, a := range s.Listen {
		if _, err := so.Listen(a); err != nil {
			return err
		}
	}
	for _, a := range s.Dial {
		if err := so.Dial(a); err != nil {
			return err
		}
	}
	if s.Registry == nil {
		return nil
	}
	if w.Bind != "" {
		if len(s.Listen) == 0 {
			// With TLS configured, never plaintext by default.
			scheme := "tcp://"
			if so.pol.server != nil {
				scheme = "tls+tcp://"
			} else if so.pol.secure {
				return Invalid("a binder wired by discovery with TLS configured needs a server TLS config (a certificate) to listen; none was given")
			}
			if _, err := so.Listen(scheme + net.JoinHostPort(s.Registry.AdvertiseHost(), "0")); err != nil {
				return err
			}
		}
		so.mu.Lock()
		bound := append([]string(nil), so.bound...)
		so.mu.Unlock()
		for _, a := range bound {
			wd, err := s.Registry.Advertise(spmesh.Endpoint{Service: s.Service, Role: w.Bind, Addr: advertisable(a, s.Registry.AdvertiseHost()), Bare: w.Bare})
			if err != nil {
				return fmt.Errorf("spmesh: advertise %s: %w", s.Service, err)
			}
			so.mu.Lock()
			so.withdraw = append(so.withdraw, wd)
			so.mu.Unlock()
		}
	}
	if w.Announce != "" && s.Name != "" {
		wd, err := s.Registry.Advertise(spmesh.Endpoint{Service: s.Service, Role: w.Announce, Addr: spmesh.NameAddrPrefix + s.Name, Bare: w.Bare})
		if err != nil {
			return fmt.Errorf("spmesh: announce %s: %w", s.Service, err)
		}
		so.mu.Lock()
		so.withdraw = append(so.withdraw, wd)
		so.mu.Unlock()
	}
	if w.Watch != "" {
		updates, stop, err := s.Registry.Watch(s.Service, w.Watch)
		if err != nil {
			return fmt.Errorf("spmesh: watch %s: %w", s.Service, err)
		}
		so.mu.Lock()
		so.stopWatch = stop
		so.mu.Unlock()
		so.wg.Add(1)
		go so.follow(updates, w.Bare)
	}
	return nil
}

// advertisable replaces an unspecified listen host (0.0.0.0, ::) by host.
func advertisable(addr, host string) string {
	i := strings.Index(addr, "://")
	if i < 0 || !strings.HasPrefix(addr, "tcp") && !strings.HasPrefix(addr, "tls+tcp") && !strings.HasPrefix(addr, "ws") {
		return addr
	}
	hp := addr[i+3:]
	rest := ""
	if j := strings.IndexByte(hp, '/'); j >= 0 {
		hp, rest = hp[:j], hp[j:]
	}
	h, port, err := net.SplitHostPort(hp)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
		return addr[:i+3] + net.JoinHostPort(host, port) + rest
	}
	return addr
}

// follow keeps exactly one dial to each advertised endpoint the policy
// allows and whose framing is bare exactly when this socket's is; each
// refused one is counted and logged once for as long as it stays
// advertised.
func (so *Socket) follow(updates <-chan []spmesh.Endpoint, bare bool) {
	defer so.wg.Done()
	dialed := map[string]bool{}
	refused := map[spmesh.Endpoint]bool{}
	for eps := range updates {
		want := make(map[string]bool, len(eps))
		seen := make(map[spmesh.Endpoint]bool, len(refused))
		for _, ep := range eps {
			if why := cmp.Or(framingMismatch(ep, bare), so.pol.refuse(ep)); why != "" {
				if !refused[ep] {
					so.refused(ep, why)
				}
				seen[ep] = true
				continue
			}
			want[ep.Addr] = true
			if !dialed[ep.Addr] {
				if err := so.dial(ep.Addr, ep.Node); err != nil {
					so.C.SetLastError(ep.Addr, err)
					so.logWarn(ep.Addr, "spmesh: dial discovered endpoint", logx.Endpoint, ep.Addr, logx.Node, ep.Node, logx.Err, err)
					continue
				}
				dialed[ep.Addr] = true
			}
		}
		refused = seen
		for a := range dialed {
			if !want[a] {
				so.Hangup(a)
				delete(dialed, a)
			}
		}
	}
}

// Listen listens on addr and returns the bound address (port 0 resolved).
func (so *Socket) Listen(addr string) (string, error) {
	if err := CheckAddr(addr); err != nil {
		return "", err
	}
	if err := so.pol.checkListen(addr); err != nil {
		return "", err
	}
	if so.closed.Load() {
		return "", spmesh.ErrClosed
	}
	l, err := so.m.NewListener(so.transportAddr(addr), so.endpointOptions(addr, so.pol.listenConfig(addr)))
	if err != nil {
		return "", fmt.Errorf("spmesh: listen %s: %w", addr, Err(err))
	}
	if err := l.Listen(); err != nil {
		return "", fmt.Errorf("spmesh: listen %s: %w", addr, Err(err))
	}
	bound := sptcp.PublicAddr(l.Address())
	so.mu.Lock()
	so.listeners = append(so.listeners, l)
	so.bound = append(so.bound, bound)
	so.mu.Unlock()
	return bound, nil
}

// transportAddr maps tcp:// and tls+tcp:// to spmesh's batching transport
// (same wire format) unless the stock mangos transport was chosen.
func (so *Socket) transportAddr(addr string) string {
	if so.Settings.StockTCP {
		return addr
	}
	return sptcp.Addr(addr)
}

// endpointOptions carries the TLS configuration tc to the transports that
// use it (mangos accepts it only per dialer or listener), and to spmesh's
// TCP transport the connection limits and the observer that counts and
// logs what happens on its connections.
func (so *Socket) endpointOptions(addr string, tc *tls.Config) map[string]any {
	opts := map[string]any{}
	if tc != nil && isSecure(addr) {
		opts[mangos.OptionTLSConfig] = tc
	}
	if !so.Settings.StockTCP && (strings.HasPrefix(addr, "tcp://") || strings.HasPrefix(addr, "tls+tcp://")) {
		opts[sptcp.OptionObserver] = so.obs
		opts[sptcp.OptionLimits] = so.Settings.limits()
	}
	return opts
}

// Dial connects to addr in the background, reconnecting with backoff for as
// long as the socket is open; dialing an address already dialed is a no-op.
// With TLS required, a plaintext addr is an error.
func (so *Socket) Dial(addr string) error {
	if err := so.pol.checkDial(addr); err != nil {
		return err
	}
	return so.dial(addr, "")
}

// dial dials addr, advertised by node ("" for a static dial): with node
// verification on, the TLS handshake requires node's name in the
// certificate.
func (so *Socket) dial(addr, node string) error {
	if err := CheckAddr(addr); err != nil {
		return err
	}
	so.mu.Lock()
	defer so.mu.Unlock()
	if so.closed.Load() {
		return spmesh.ErrClosed
	}
	if _, ok := so.dialers[addr]; ok {
		return nil
	}
	d, err := so.m.NewDialer(so.transportAddr(addr), so.endpointOptions(addr, so.pol.dialConfig(addr, node)))
	if err != nil {
		return fmt.Errorf("spmesh: dial %s: %w", addr, Err(err))
	}
	so.dialers[addr] = &dialer{d: d}
	if err := d.Dial(); err != nil {
		delete(so.dialers, addr)
		return fmt.Errorf("spmesh: dial %s: %w", addr, Err(err))
	}
	return nil
}

// Hangup stops dialing addr and closes its connection.
func (so *Socket) Hangup(addr string) {
	so.mu.Lock()
	dl, ok := so.dialers[addr]
	if ok {
		delete(so.dialers, addr)
		if len(so.hungup) >= 1024 {
			// Bound the memory of a long-lived socket whose peers churn:
			// a dial still in flight this long after its hangup is gone.
			clear(so.hungup)
		}
		so.hungup[dl.d] = true
	}
	so.mu.Unlock()
	if !ok {
		return
	}
	dl.d.Close()
	if dl.pipe != nil {
		dl.pipe.Close()
	}
}

// onPipe adds a hook called on every connection event.
func (so *Socket) onPipe(f func(mangos.PipeEvent, mangos.Pipe)) {
	so.mu.Lock()
	so.pipeHooks = append(so.pipeHooks, f)
	so.mu.Unlock()
}

func (so *Socket) pipeEvent(ev mangos.PipeEvent, p mangos.Pipe) {
	so.mu.Lock()
	if d := p.Dialer(); d != nil {
		if so.hungup[d] && ev == mangos.PipeEventAttached {
			// A dial that completed after Hangup: drop the connection.
			// (Closing in the Attaching hook would deadlock mangos.)
			delete(so.hungup, d)
			defer p.Close()
		}
		for _, dl := range so.dialers {
			if dl.d == d {
				if ev == mangos.PipeEventAttached {
					dl.pipe = p
				} else if ev == mangos.PipeEventDetached && dl.pipe == p {
					dl.pipe = nil
				}
			}
		}
	}
	hooks := so.pipeHooks
	so.mu.Unlock()
	switch ev {
	case mangos.PipeEventAttached:
		so.peers.Add(1)
	case mangos.PipeEventDetached:
		so.peers.Add(-1)
	}
	so.wake.signal()
	for _, h := range hooks {
		h(ev, p)
	}
}

// Peers is the number of established connections.
func (so *Socket) Peers() int { return int(so.peers.Load()) }

// Bound returns the addresses the socket listens on.
func (so *Socket) Bound() []string {
	so.mu.Lock()
	defer so.mu.Unlock()
	return append([]string(nil), so.bound...)
}

// Closed reports whether Close was called.
func (so *Socket) Closed() bool { return so.closed.Load() }

// Close withdraws advertisements, stops following the registry and closes
// the mangos socket. It is idempotent.
func (so *Socket) Close() error {
	if so.closed.Swap(true) {
		return nil
	}
	defer so.wake.signal()
	so.mu.Lock()
	withdraw, stop := so.withdraw, so.stopWatch
	so.withdraw, so.stopWatch = nil, nil
	so.mu.Unlock()
	for _, wd := range withdraw {
		wd()
	}
	if stop != nil {
		stop()
	}
	so.wg.Wait()
	err := so.m.Close()
	if errors.Is(err, mangos.ErrClosed) {
		err = nil
	}
	return err
}

// Stats returns the counters.
func (so *Socket) Stats() spmesh.Stats {
	return spmesh.Stats{
		Sent:         so.C.Sent.Load(),
		Received:     so.C.Received.Load(),
		Dropped:      so.C.Dropped.Load(),
		Resent:       so.C.Resent.Load(),
		DecodeErrors: so.C.DecodeErrors.Load(),
		Peers:        so.Peers(),

		BytesSent:     so.C.BytesSent.Load(),
		BytesReceived: so.C.BytesReceived.Load(),

		DroppedQueueFull: so.C.DroppedQueueFull.Load(),
		DroppedClosed:    so.C.DroppedClosed.Load(),

		DroppedTooLarge:    so.C.DroppedTooLarge.Load(),
		DroppedSendTimeout: so.C.DroppedSendTimeout.Load(),
		DroppedExpired:     so.C.DroppedExpired.Load(),
		DroppedGap:         so.C.DroppedGap.Load(),
		DroppedLate:        so.C.DroppedLate.Load(),
		Draining:           so.C.Draining.Load(),

		TooLarge:         so.C.TooLarge.Load(),
		SendTimeouts:     so.C.SendTimeouts.Load(),
		ConnsRefused:     so.C.ConnsRefused.Load(),
		ConnTimeouts:     so.C.ConnTimeouts.Load(),
		HandshakeErrors:  so.C.HandshakeErrors.Load(),
		EndpointsRefused: so.C.EndpointsRefused.Load(),
		LastError:        so.C.LastError(),
	}
}

// NewID returns a fresh message id: a random per-socket prefix and a counter.
func (so *Socket) NewID() wire.ID { return so.ids.next() }

type idGen struct {
	prefix uint64
	n      atomic.Uint64
}

func (g *idGen) init() {
	var b [16]byte
	rand.Read(b[:])
	g.prefix = binary.BigEndian.Uint64(b[:8])
	g.n.Store(binary.BigEndian.Uint64(b[8:]) >> 16)
}

func (g *idGen) next() (id wire.ID) {
	binary.BigEndian.PutUint64(id[:8], g.prefix)
	binary.BigEndian.PutUint64(id[8:], g.n.Add(1))
	return id
}

// RandomUint64 returns a random non-zero number (publisher ids).
func RandomUint64() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

// Err translates a mangos error into spmesh's vocabulary.
func Err(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mangos.ErrClosed):
		return spmesh.ErrClosed
	case errors.Is(err, mangos.ErrTooLong):
		return spmesh.ErrTooLarge
	case errors.Is(err, mangos.ErrNoPeers):
		return spmesh.ErrNoPeers
	case errors.Is(err, mangos.ErrRecvTimeout), errors.Is(err, mangos.ErrSendTimeout):
		return spmesh.ErrTimeout
	case errors.Is(err, mangos.ErrBadAddr), errors.Is(err, mangos.ErrBadTran):
		return fmt.Errorf("%w: bad address (%v)", spmesh.ErrInvalidOption, err)
	case errors.Is(err, mangos.ErrAddrInUse):
		return fmt.Errorf("spmesh: address in use: %v", err)
	case errors.Is(err, mangos.ErrTLSNoConfig), errors.Is(err, mangos.ErrTLSNoCert):
		return fmt.Errorf("%w: TLS: %v", spmesh.ErrInvalidOption, err)
	}
	return fmt.Errorf("spmesh: %v", err)
}

// IsClosed reports whether err, from a socket, Frame sender or SurveyCtx
// (before Err translates it), means the socket or context closed.
func IsClosed(err error) bool { return errors.Is(err, mangos.ErrClosed) }

// IsRecvTimeout reports whether err, from Ticket.Wait or SurveyCtx.Recv,
// means the receive deadline passed with nothing received.
func IsRecvTimeout(err error) bool { return errors.Is(err, mangos.ErrRecvTimeout) }

// IsCanceled reports whether err, from Ticket.Wait, means the request's
// connection dropped before its reply came (the request may be resent).
func IsCanceled(err error) bool { return errors.Is(err, mangos.ErrCanceled) }

// NoPeers returns an error wrapping spmesh.ErrNoPeers that says what is
// missing (e.g. "no worker connected") and, when the socket recorded one,
// the last connection error (a refused handshake, a refused endpoint, a
// failed dial): why nobody could be reached. Every pattern produces its
// ErrNoPeers here.
func (so *Socket) NoPeers(what string) error {
	return NoPeersError(what, so.C.LastError())
}

// NoPeersError is NoPeers for a caller that holds the last error (from
// Stats().LastError) rather than the socket.
func NoPeersError(what, lastErr string) error {
	if lastErr == "" {
		return fmt.Errorf("%w: %s", spmesh.ErrNoPeers, what)
	}
	return fmt.Errorf("%w: %s (last error: %s)", spmesh.ErrNoPeers, what, lastErr)
}

// Explain adds the last connection error to err when err means that
// nobody could be reached: ErrNoPeers, or a context deadline that passed
// while no peer was connected. The result still wraps err (errors.Is holds
// for ErrNoPeers and context.DeadlineExceeded). Other errors are returned
// as they are.
func (so *Socket) Explain(err error) error {
	last := so.C.LastError()
	switch {
	case err == nil || last == "":
		return err
	case errors.Is(err, spmesh.ErrNoPeers):
		if err == spmesh.ErrNoPeers {
			return NoPeersError("nobody connected", last)
		}
		return fmt.Errorf("%w (last error: %s)", err, last)
	case errors.Is(err, context.DeadlineExceeded) && so.Peers() == 0:
		return fmt.Errorf("%w: no peers (last error: %s)", err, last)
	}
	return err
}

// CtxErr returns ctx.Err() when ctx has ended, else err translated: a call
// cut short by its context reports the context's error.
func CtxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return Err(err)
}
