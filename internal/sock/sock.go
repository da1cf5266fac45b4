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
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/spmesh/spmesh/internal/logx"
	"go.nanomsg.org/mangos/v3"

	// The transports spmesh speaks.
	_ "go.nanomsg.org/mangos/v3/transport/inproc"
	_ "go.nanomsg.org/mangos/v3/transport/ipc"
	_ "go.nanomsg.org/mangos/v3/transport/tcp"
	_ "go.nanomsg.org/mangos/v3/transport/tlstcp"
	_ "go.nanomsg.org/mangos/v3/transport/ws"
	_ "go.nanomsg.org/mangos/v3/transport/wss"
)

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
	_ = m.SetOption(optFrame, s.MaxMsgSize)      // SUB: the receive limit it announces (sub.go)
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
