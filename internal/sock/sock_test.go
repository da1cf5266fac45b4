package sock_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"go.nanomsg.org/mangos/v3"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

func open(t *testing.T, p sock.Proto, w sock.Wiring, opts ...sock.Option) *sock.Socket {
	t.Helper()
	s := sock.DefaultSettings()
	for _, o := range opts {
		if err := o(&s); err != nil {
			t.Fatal(err)
		}
	}
	so, err := sock.Open(p, s, w)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { so.Close() })
	return so
}

func peers(so *sock.Socket, want int) func() error {
	return func() error {
		if got := so.Peers(); got != want {
			return fmt.Errorf("got %d peers, want %d", got, want)
		}
		return nil
	}
}

func TestErrTranslation(t *testing.T) {
	cases := []struct {
		in   error
		want error
	}{
		{mangos.ErrClosed, spmesh.ErrClosed},
		{mangos.ErrTooLong, spmesh.ErrTooLarge},
		{mangos.ErrNoPeers, spmesh.ErrNoPeers},
		{mangos.ErrRecvTimeout, spmesh.ErrTimeout},
		{mangos.ErrSendTimeout, spmesh.ErrTimeout},
		{mangos.ErrBadAddr, spmesh.ErrInvalidOption},
		{mangos.ErrBadTran, spmesh.ErrInvalidOption},
	}
	for _, c := range cases {
		if got := sock.Err(c.in); !errors.Is(got, c.want) {
			t.Errorf("Err(%v): got %v, want %v", c.in, got, c.want)
		}
	}
	if got := sock.Err(mangos.ErrGarbled); !strings.HasPrefix(got.Error(), "spmesh: ") || errors.Is(got, mangos.ErrGarbled) {
		t.Errorf("Err(ErrGarbled): got %v, want a spmesh: error that does not leak the mangos error", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := sock.CtxErr(ctx, mangos.ErrClosed); !errors.Is(got, context.Canceled) {
		t.Errorf("CtxErr: got %v, want context.Canceled", got)
	}
}

func TestCheckAddr(t *testing.T) {
	for _, a := range []string{"tcp://127.0.0.1:1", "tls+tcp://h:1", "ipc:///tmp/x", "inproc://x", "ws://h:1/p", "wss://h:1/p"} {
		if err := sock.CheckAddr(a); err != nil {
			t.Errorf("%q: got %v, want nil", a, err)
		}
	}
	for _, a := range []string{"", "tcp://", "udp://h:1", "127.0.0.1:80"} {
		if err := sock.CheckAddr(a); !errors.Is(err, spmesh.ErrInvalidOption) {
			t.Errorf("%q: got %v, want ErrInvalidOption", a, err)
		}
	}
}

func TestListenPortZeroAndDialBeforeListen(t *testing.T) {
	l := open(t, sock.Rep, sock.Wiring{})
	addr := testutil.FreeTCP(t)
	// Dialing first is fine: start-up order never matters.
	d := open(t, sock.Req, sock.Wiring{}, sock.WithDial(addr), sock.WithReconnect(5*time.Millisecond, 50*time.Millisecond))
	bound, err := l.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	if bound != addr {
		t.Fatalf("got bound %q, want %q", bound, addr)
	}
	testutil.Eventually(t, 10*time.Second, peers(d, 1))
	b0, err := l.Listen("tcp://127.0.0.1:0")
	if err != nil || strings.HasSuffix(b0, ":0") {
		t.Fatalf("port 0: got %q %v, want a resolved port", b0, err)
	}
}

func TestDiscoveryFollowsRegistry(t *testing.T) {
	reg := discovery.NewStatic("127.0.0.1")
	defer reg.Close()
	pub := open(t, sock.Pub, sock.Wiring{Bind: spmesh.RolePublisher}, sock.WithDiscovery(reg, "svc"))
	bound := pub.Bound()
	if len(bound) != 1 || !strings.HasPrefix(bound[0], "tcp://127.0.0.1:") {
		t.Fatalf("got bound %v, want one tcp://127.0.0.1:port", bound)
	}
	sub := open(t, sock.Sub, sock.Wiring{Watch: spmesh.RolePublisher}, sock.WithDiscovery(reg, "svc"))
	testutil.Eventually(t, 10*time.Second, peers(sub, 1))

	// A second endpoint, added by hand, is dialed too; removing it hangs up.
	other := open(t, sock.Pub, sock.Wiring{})
	oaddr, err := other.Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := spmesh.Endpoint{Service: "svc", Role: spmesh.RolePublisher, Addr: oaddr}
	reg.Add(ep)
	testutil.Eventually(t, 10*time.Second, peers(sub, 2))
	reg.Remove(ep)
	testutil.Eventually(t, 10*time.Second, peers(sub, 1))
	testutil.Eventually(t, 10*time.Second, peers(other, 0))

	// Closing the binder withdraws it: the connector hangs up for good.
	pub.Close()
	testutil.Eventually(t, 10*time.Second, peers(sub, 0))
	if eps := reg.Endpoints(); len(eps) != 0 {
		t.Fatalf("got %v still advertised, want none", eps)
	}
}

func TestUnspecifiedListenAdvertisesReachableHost(t *testing.T) {
	reg := discovery.NewStatic("127.0.0.1")
	defer reg.Close()
	open(t, sock.Rep, sock.Wiring{Bind: spmesh.RoleReplier}, sock.WithDiscovery(reg, "svc"), sock.WithListen("tcp://0.0.0.0:0"))
	eps := reg.Endpoints()
	if len(eps) != 1 || !strings.HasPrefix(eps[0].Addr, "tcp://127.0.0.1:") {
		t.Fatalf("got %v, want the advertise host instead of 0.0.0.0", eps)
	}
}

func TestEncodeLimits(t *testing.T) {
	so := open(t, sock.Pub, sock.Wiring{}, sock.WithMaxMessageSize(128))
	env := wire.Msg{Kind: wire.KindPush}
	m, err := so.EncodeWith(spmesh.Raw, &env, []byte("ok"))
	if err != nil {
		t.Fatal(err)
	}
	var got wire.Msg
	if err := wire.Decode(m.Body, &got); err != nil || string(got.Body) != "ok" {
		t.Fatalf("got %q %v, want body ok", got.Body, err)
	}
	if _, err := so.EncodeWith(spmesh.Raw, &env, make([]byte, 200)); !errors.Is(err, spmesh.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if _, err := so.EncodeWith(spmesh.Raw, &env, 42); err == nil {
		t.Fatal("raw codec encoded an int, want an error")
	}
}

// More user headers than a receiver takes fail at the sender, naming why.
func TestEncodeRefusesTooManyHeaders(t *testing.T) {
	so := open(t, sock.Pub, sock.Wiring{})
	env := wire.Msg{Kind: wire.KindPush, Header: spmesh.Header{}}
	for i := range wire.MaxHeaders + 1 {
		env.Header[fmt.Sprint(i)] = "v"
	}
	if _, err := so.EncodeWith(spmesh.Raw, &env, []byte("x")); !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), "headers") {
		t.Fatalf("got %v, want ErrInvalidOption naming the headers", err)
	}
	delete(env.Header, "0")
	if _, err := so.EncodeWith(spmesh.Raw, &env, []byte("x")); err != nil {
		t.Fatalf("got %v with %d headers, want nil", err, len(env.Header))
	}
}

// A handler error wrapping ErrDecode, from any codec, travels with
// CodeDecode, so that the caller's error matches spmesh.ErrDecode too.
func TestSetErrorCodesDecode(t *testing.T) {
	var env wire.Msg
	sock.SetError(&env, fmt.Errorf("%w: json: unexpected end", spmesh.ErrDecode))
	if env.Code != spmesh.CodeDecode {
		t.Fatalf("got code %d, want CodeDecode (%d)", env.Code, spmesh.CodeDecode)
	}
	env = wire.Msg{}
	sock.SetError(&env, errors.New("plain"))
	if env.Code != 0 {
		t.Fatalf("got code %d for a plain error, want 0", env.Code)
	}
}

func TestOptionsRejectBadValues(t *testing.T) {
	bad := map[string]sock.Option{
		"codec":     sock.WithCodec(nil),
		"logger":    sock.WithLogger(nil),
		"listen":    sock.WithListen("nope"),
		"dial":      sock.WithDial(""),
		"tls":       sock.WithTLS(nil),
		"max size":  sock.WithMaxMessageSize(0),
		"queue":     sock.WithQueueLen(-1),
		"reconnect": sock.WithReconnect(0, 0),
		"registry":  sock.WithDiscovery(nil, "a"),
		"service":   sock.WithDiscovery(discovery.NewStatic(""), "a b"),
		"name":      sock.WithName(""),
	}
	for name, o := range bad {
		s := sock.DefaultSettings()
		if err := o(&s); !errors.Is(err, spmesh.ErrInvalidOption) {
			t.Errorf("%s: got %v, want ErrInvalidOption", name, err)
		}
	}
}
