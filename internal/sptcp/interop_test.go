package sptcp

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/pub"
	"go.nanomsg.org/mangos/v3/protocol/pull"
	"go.nanomsg.org/mangos/v3/protocol/push"
	"go.nanomsg.org/mangos/v3/protocol/rep"
	"go.nanomsg.org/mangos/v3/protocol/req"
	"go.nanomsg.org/mangos/v3/protocol/sub"
	_ "go.nanomsg.org/mangos/v3/transport/tlstcp"

	"github.com/spmesh/spmesh/internal/testutil"
)

// side says which transport one end of a connection uses.
type side struct {
	name   string
	scheme string
}

var (
	ours  = side{"sptcp", Scheme}
	stock = side{"stock", "tcp"}
)

// combos: listener side, dialer side.
var combos = [][2]side{{ours, ours}, {ours, stock}, {stock, ours}}

func newSock(t *testing.T, open func() (mangos.Socket, error)) mangos.Socket {
	t.Helper()
	s, err := open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// connect makes ls listen with its side's transport and ds dial it with its
// own; opts go to both.
func connect(t testing.TB, ls, ds mangos.Socket, l, d side, opts map[string]any) {
	t.Helper()
	lst, err := ls.NewListener(l.scheme+"://127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := lst.Listen(); err != nil {
		t.Fatal(err)
	}
	addr := d.scheme + "://" + hostPort(lst.Address())
	if err := ds.DialOptions(addr, opts); err != nil {
		t.Fatal(err)
	}
}

func TestInteropReqRep(t *testing.T) {
	for _, c := range combos {
		for _, repListens := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s-listens-%s-dials-rep-listens-%v", c[0].name, c[1].name, repListens), func(t *testing.T) {
				rq, rp := newSock(t, req.NewSocket), newSock(t, rep.NewSocket)
				if repListens {
					connect(t, rp, rq, c[0], c[1], nil)
				} else {
					connect(t, rq, rp, c[0], c[1], nil)
				}
				reqRepRounds(t, rq, rp)
			})
		}
	}
}

func reqRepRounds(t *testing.T, rq, rp mangos.Socket) {
	t.Helper()
	go func() {
		for {
			m, err := rp.RecvMsg()
			if err != nil {
				return
			}
			m.Body = append(m.Body, '!')
			if rp.SendMsg(m) != nil {
				return
			}
		}
	}()
	rq.SetOption(mangos.OptionRecvDeadline, wait)
	for i, n := range []int{0, 1, 100, 4096, RefThreshold + 1, 300_000} {
		want := append(payload(i, n), '!')
		if err := rq.Send(payload(i, n)); err != nil {
			t.Fatalf("request %d: got %v, want nil", i, err)
		}
		got, err := rq.Recv()
		if err != nil {
			t.Fatalf("reply %d: got %v, want nil", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("reply %d: got %d bytes, want %d", i, len(got), len(want))
		}
	}
}

func TestInteropPubSub(t *testing.T) {
	for _, c := range combos {
		for _, pubListens := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s-listens-%s-dials-pub-listens-%v", c[0].name, c[1].name, pubListens), func(t *testing.T) {
				const count = 2000
				ps, ss := newSock(t, pub.NewSocket), newSock(t, sub.NewSocket)
				ps.SetOption(mangos.OptionWriteQLen, 2*count)
				ss.SetOption(mangos.OptionReadQLen, 2*count)
				ss.SetOption(mangos.OptionSubscribe, []byte("D"))
				ss.SetOption(mangos.OptionSubscribe, []byte("P"))
				if pubListens {
					connect(t, ps, ss, c[0], c[1], nil)
				} else {
					connect(t, ss, ps, c[0], c[1], nil)
				}
				// Probe until the subscriber hears the publisher.
				ss.SetOption(mangos.OptionRecvDeadline, 20*time.Millisecond)
				testutil.Eventually(t, wait, func() error {
					ps.Send([]byte("P"))
					_, err := ss.Recv()
					return err
				})
				ss.SetOption(mangos.OptionRecvDeadline, wait)
				for i := range count {
					if err := ps.Send(append([]byte("D"), payload(i, i%600)...)); err != nil {
						t.Fatal(err)
					}
				}
				for i := 0; i < count; {
					got, err := ss.Recv()
					if err != nil {
						t.Fatalf("message %d: got %v, want nil", i, err)
					}
					if got[0] == 'P' {
						continue // a late probe
					}
					if want := append([]byte("D"), payload(i, i%600)...); !bytes.Equal(got, want) {
						t.Fatalf("message %d: got %d bytes, want %d", i, len(got), len(want))
					}
					i++
				}
			})
		}
	}
}

// Push/pull has backpressure and no drops: a long mixed stream must arrive
// whole and in order through every combination.
func TestInteropPushPullStream(t *testing.T) {
	sizes := []int{0, 16, 256, 4096, 16, 256, RefThreshold + 5, 256}
	for _, c := range combos {
		t.Run(c[0].name+"-listens-"+c[1].name+"-dials", func(t *testing.T) {
			const count = 3000
			ps, pl := newSock(t, push.NewSocket), newSock(t, pull.NewSocket)
			connect(t, pl, ps, c[0], c[1], nil)
			go func() {
				for i := range count {
					if ps.Send(payload(i, sizes[i%len(sizes)])) != nil {
						return
					}
				}
			}()
			pl.SetOption(mangos.OptionRecvDeadline, wait)
			for i := range count {
				got, err := pl.Recv()
				if err != nil {
					t.Fatalf("message %d: got %v, want nil", i, err)
				}
				if want := payload(i, sizes[i%len(sizes)]); !bytes.Equal(got, want) {
					t.Fatalf("message %d: got %d bytes, want %d", i, len(got), len(want))
				}
			}
		})
	}
}

// A stock peer sending a frame over our receive limit is cut off, and
// mangos reconnects it.
func TestInteropMaxRecvSize(t *testing.T) {
	ps, pl := newSock(t, push.NewSocket), newSock(t, pull.NewSocket)
	pl.SetOption(mangos.OptionMaxRecvSize, 1000)
	events := make(chan mangos.PipeEvent, 16)
	pl.SetPipeEventHook(func(ev mangos.PipeEvent, _ mangos.Pipe) { events <- ev })
	connect(t, pl, ps, ours, stock, nil)
	next := func(want mangos.PipeEvent) {
		t.Helper()
		for {
			select {
			case ev := <-events:
				if ev == want {
					return
				}
			case <-time.After(wait):
				t.Fatalf("no pipe event %v within the deadline", want)
			}
		}
	}
	next(mangos.PipeEventAttached)
	ps.Send(make([]byte, 1001))
	next(mangos.PipeEventDetached)
	next(mangos.PipeEventAttached) // the stock dialer reconnected
	ps.Send([]byte("fits"))
	pl.SetOption(mangos.OptionRecvDeadline, wait)
	if got, err := pl.Recv(); err != nil || string(got) != "fits" {
		t.Fatalf("after reconnect: got %q, %v, want %q", got, err, "fits")
	}
}

func TestTLS(t *testing.T) {
	srv, cli := testutil.TLSConfigs(t)
	tlsOurs, tlsStock := side{"sptls", TLSScheme}, side{"stock-tls", "tls+tcp"}
	for _, c := range [][2]side{{tlsOurs, tlsOurs}, {tlsOurs, tlsStock}, {tlsStock, tlsOurs}} {
		t.Run(c[0].name+"-listens-"+c[1].name+"-dials", func(t *testing.T) {
			rq, rp := newSock(t, req.NewSocket), newSock(t, rep.NewSocket)
			lst, err := rp.NewListener(c[0].scheme+"://127.0.0.1:0", map[string]any{mangos.OptionTLSConfig: srv})
			if err != nil {
				t.Fatal(err)
			}
			if err := lst.Listen(); err != nil {
				t.Fatal(err)
			}
			if err := rq.DialOptions(c[1].scheme+"://"+hostPort(lst.Address()), map[string]any{mangos.OptionTLSConfig: cli}); err != nil {
				t.Fatal(err)
			}
			reqRepRounds(t, rq, rp)
		})
	}
	t.Run("no config", func(t *testing.T) {
		s := pairSocket(t)
		l, err := TLSTransport.NewListener(TLSScheme+"://127.0.0.1:0", s)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := l.Listen(); !errors.Is(err, mangos.ErrTLSNoConfig) {
			t.Fatalf("listen without config: got %v, want %v", err, mangos.ErrTLSNoConfig)
		}
		d, _ := TLSTransport.NewDialer(TLSScheme+"://127.0.0.1:1", s)
		if _, err := d.Dial(); !errors.Is(err, mangos.ErrTLSNoConfig) {
			t.Fatalf("dial without config: got %v, want %v", err, mangos.ErrTLSNoConfig)
		}
	})
}
