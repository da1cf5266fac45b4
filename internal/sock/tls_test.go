package sock_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/testutil"
)

func TestTLS(t *testing.T) {
	srv, cli := testutil.TLSConfigs(t)
	for _, stock := range []bool{false, true} {
		name := "sptcp"
		if stock {
			name = "stock"
		}
		t.Run(name, func(t *testing.T) {
			opts := func(c *tls.Config) []sock.Option {
				o := []sock.Option{sock.WithTLS(c)}
				if stock {
					o = append(o, sock.WithStockTCP())
				}
				return o
			}
			rep := open(t, sock.Rep, sock.Wiring{}, opts(srv)...)
			addr, err := rep.Listen("tls+tcp://127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(addr, "tls+tcp://127.0.0.1:") {
				t.Fatalf("got bound %q, want a tls+tcp:// address", addr)
			}
			req := open(t, sock.Req, sock.Wiring{}, append(opts(cli), sock.WithDial(addr))...)
			testutil.Eventually(t, 10*time.Second, peers(req, 1))
			testutil.Eventually(t, 10*time.Second, peers(rep, 1))
		})
	}
}

func TestTLSWithoutConfigIsInvalid(t *testing.T) {
	rep := open(t, sock.Rep, sock.Wiring{})
	if _, err := rep.Listen("tls+tcp://127.0.0.1:0"); !errors.Is(err, spmesh.ErrInvalidOption) {
		t.Fatalf("got %v, want ErrInvalidOption", err)
	}
}

// The batching transport and mangos' stock one speak the same wire format.
func TestBatchingInteropsWithStock(t *testing.T) {
	for _, stockListener := range []bool{false, true} {
		var lo, do []sock.Option
		if stockListener {
			lo = append(lo, sock.WithStockTCP())
		} else {
			do = append(do, sock.WithStockTCP())
		}
		rep := open(t, sock.Rep, sock.Wiring{}, lo...)
		addr, err := rep.Listen("tcp://127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		req := open(t, sock.Req, sock.Wiring{}, append(do, sock.WithDial(addr))...)
		testutil.Eventually(t, 10*time.Second, peers(req, 1))
		if err := sock.Mangos(req).Send([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		got, err := sock.Mangos(rep).Recv()
		if err != nil || string(got) != "ping" {
			t.Fatalf("got %q %v, want ping", got, err)
		}
	}
}
