package discovery_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/internal/netlab"
	"github.com/spmesh/spmesh/internal/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	netlab.MaybeChild(childCommands) // in a netlab host, serve the controller and exit
	code := m.Run()
	if code == 0 {
		// memberlist's probe goroutines outlive Shutdown by up to a probe
		// interval (they wait for their ack timeout): let them end, then
		// look for leaks.
		testutil.Until(5*time.Second, func() error {
			buf := make([]byte, 1<<20)
			if bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("hashicorp/memberlist")) {
				return errors.New("memberlist goroutines still running")
			}
			return nil
		})
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func ep(svc string, role spmesh.Role, addr string) spmesh.Endpoint {
	return spmesh.Endpoint{Service: svc, Role: role, Addr: addr}
}

// next waits for the next snapshot on ch.
func next(t *testing.T, ch <-chan []spmesh.Endpoint) []spmesh.Endpoint {
	t.Helper()
	select {
	case s, ok := <-ch:
		if !ok {
			t.Fatal("got closed channel, want a snapshot")
		}
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("got no snapshot within 10s, want one")
	}
	return nil
}

func addrs(eps []spmesh.Endpoint) []string {
	out := []string{}
	for _, e := range eps {
		out = append(out, e.Addr)
	}
	slices.Sort(out)
	return out
}

func TestStatic(t *testing.T) {
	s := discovery.NewStatic("", ep("svc", spmesh.RoleReplier, "tcp://10.0.0.1:1"))
	defer s.Close()
	if got := s.AdvertiseHost(); got != "127.0.0.1" {
		t.Fatalf("AdvertiseHost: got %q, want 127.0.0.1", got)
	}
	ch, stop, err := s.Watch("svc", spmesh.RoleReplier)
	if err != nil {
		t.Fatal(err)
	}
	if got := addrs(next(t, ch)); !slices.Equal(got, []string{"tcp://10.0.0.1:1"}) {
		t.Fatalf("first snapshot: got %v, want the seeded endpoint", got)
	}
	// Another role or service does not disturb the watcher.
	if err := s.Add(ep("svc", spmesh.RolePublisher, "tcp://10.0.0.9:1"), ep("other", spmesh.RoleReplier, "tcp://10.0.0.9:2")); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-ch:
		t.Fatalf("got snapshot %v for an unrelated change, want none", got)
	default:
	}
	wd, err := s.Advertise(ep("svc", spmesh.RoleReplier, "tcp://10.0.0.2:1"))
	if err != nil {
		t.Fatal(err)
	}
	if got := addrs(next(t, ch)); !slices.Equal(got, []string{"tcp://10.0.0.1:1", "tcp://10.0.0.2:1"}) {
		t.Fatalf("after advertise: got %v, want both", got)
	}
	wd()
	wd() // idempotent
	if got := addrs(next(t, ch)); !slices.Equal(got, []string{"tcp://10.0.0.1:1"}) {
		t.Fatalf("after withdraw: got %v, want the seeded one", got)
	}
	// Coalescing: many changes unread leave only the latest.
	for i := range 10 {
		s.Add(ep("svc", spmesh.RoleReplier, fmt.Sprintf("tcp://10.0.1.%d:1", i)))
	}
	if got := next(t, ch); len(got) != 11 {
		t.Fatalf("coalesced snapshot: got %d endpoints, want 11", len(got))
	}
	select {
	case got := <-ch:
		t.Fatalf("got a stale snapshot %v after the latest, want none", got)
	default:
	}
	s.Remove(ep("svc", spmesh.RoleReplier, "tcp://10.0.0.1:1"), ep("nope", spmesh.RoleReplier, "x"))
	if got := next(t, ch); len(got) != 10 {
		t.Fatalf("after remove: got %d endpoints, want 10", len(got))
	}
	stop()
	stop()
	if _, ok := <-ch; ok {
		t.Fatal("after stop: got an open channel, want it closed")
	}
	if err := s.Add(spmesh.Endpoint{Service: "x"}); !errors.Is(err, spmesh.ErrInvalidOption) {
		t.Fatalf("add without role: got %v, want ErrInvalidOption", err)
	}
	// Static is trusted: any transport goes, but not a typo.
	for _, a := range []string{"inproc://x", "ipc:///tmp/x.sock", "tcp://169.254.169.254:80", "name:r"} {
		if err := s.Add(ep("other", spmesh.RoleReplier, a)); err != nil {
			t.Fatalf("add %s: got %v, want nil", a, err)
		}
	}
	for _, a := range []string{"10.0.0.1:80", "http://x", "tpc://10.0.0.1:1"} {
		if err := s.Add(ep("other", spmesh.RoleReplier, a)); !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), a) {
			t.Fatalf("add %s: got %v, want ErrInvalidOption naming it", a, err)
		}
	}
	if _, _, err := s.Watch("", spmesh.RoleReplier); !errors.Is(err, spmesh.ErrInvalidOption) {
		t.Fatalf("watch without service: got %v, want ErrInvalidOption", err)
	}
	ch2, _, _ := s.Watch("svc", spmesh.RoleReplier)
	next(t, ch2)
	s.Close()
	s.Close()
	if _, ok := <-ch2; ok {
		t.Fatal("after Close: got an open channel, want it closed")
	}
	if _, err := s.Advertise(ep("svc", spmesh.RoleReplier, "x")); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("advertise after Close: got %v, want ErrClosed", err)
	}
	if _, _, err := s.Watch("svc", spmesh.RoleReplier); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("watch after Close: got %v, want ErrClosed", err)
	}
}

// TestStaticWiresPubSub wires a publisher and a subscriber through a Static
// registry by service name only.
func TestStaticWiresPubSub(t *testing.T) {
	s := discovery.NewStatic("127.0.0.1")
	defer s.Close()
	pubSubRoundTrip(t, s, s, "static.events")
}
