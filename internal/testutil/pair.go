package testutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
)

// Pair describes the two sides of one pattern wired together, for the
// suite's pair check (RunPair): every message sent arrives exactly once,
// and both sides' Stats agree.
type Pair struct {
	// Open opens both sides wired over addr (one listens on it, the other
	// dials it). a is the sending or calling side (Publisher, Pusher,
	// Requester, Producer, Surveyor), b the receiving or serving one. A
	// serving b's handler decodes the index each request carries, calls
	// got with it and answers with that same index.
	Open func(t *testing.T, addr string, got func(i int)) (a, b io.Closer)
	// Send sends message i from a (Publish, Push, Request, Produce,
	// Survey). A call returns once its answer came back, and fails unless
	// the answer carries i.
	Send func(ctx context.Context, a io.Closer, i int) error
	// Recv takes the next message at a receiving b (Subscriber, Puller) and
	// returns the index it carries; nil for a serving b, whose handler
	// reports to got.
	Recv func(ctx context.Context, b io.Closer) (int, error)
	// N is the number of messages sent; 0 means 100.
	N int
	// Ordered says that messages from one sender arrive in the order sent
	// (pub/sub per publisher, push/pull per pusher): Recv must then
	// return 0, 1, 2...
	Ordered bool
}

// RunPair runs the pair check over inproc and TCP: both sides see one
// peer; N messages (or calls) each arrive exactly once; the sender's Sent
// equals the receiver's Received (and for calls the reverse: answers), the
// bytes each side sent equal the bytes the other received, nothing is
// dropped; after one side closes, the other's Peers returns to 0; what
// was sent before the sender's Drain is all delivered; a receiver's Drain
// hands over everything it had accepted, then closes; the same exchange
// from four goroutines at once is still exactly once.
func RunPair(t *testing.T, p Pair) {
	n := p.N
	if n == 0 {
		n = 100
	}
	for _, tr := range transports {
		t.Run("Exchange"+tr.name, func(t *testing.T) {
			seen := newTally(n)
			a, b := p.Open(t, tr.addr(t), seen.add)
			defer a.Close()
			defer b.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			connected(t, ctx, a, b)

			for i := range n {
				if err := p.Send(ctx, a, i); err != nil {
					t.Fatalf("send %d of %d: %v", i, n, err)
				}
			}
			if p.Recv != nil {
				for k := range n {
					i, err := p.Recv(ctx, b)
					if err != nil {
						t.Fatalf("receive after %d of %d: %v", seen.total(), n, err)
					}
					if p.Ordered && i != k {
						t.Fatalf("message %d received as number %d: out of order", i, k)
					}
					seen.add(i)
				}
			}
			if err := seen.check(); err != nil {
				t.Fatal(err)
			}
			call := p.Recv == nil
			Eventually(t, 10*time.Second, func() error { return statsAgree(a, b, uint64(n), call) })
			if p.Recv != nil {
				// Nothing more arrives: watching for a while cannot fail a
				// correct receiver; it catches a duplicate.
				wctx, wcancel := context.WithTimeout(ctx, 50*time.Millisecond)
				i, err := p.Recv(wctx, b)
				wcancel()
				if err == nil {
					t.Fatalf("message %d arrived once more after all %d", i, n)
				}
			}

			if err := a.Close(); err != nil {
				t.Fatalf("Close %T: %v", a, err)
			}
			Eventually(t, 10*time.Second, func() error { return peersAre(b, 0) })
		})
		t.Run("Concurrent"+tr.name, func(t *testing.T) {
			// Every type is safe for concurrent use: four goroutines
			// share the sends, still each message arrives exactly once.
			const senders = 4
			seen := newTally(n)
			a, b := p.Open(t, tr.addr(t), seen.add)
			defer a.Close()
			defer b.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			connected(t, ctx, a, b)
			errs := make(chan error, senders)
			for g := range senders {
				go func() {
					for i := g; i < n; i += senders {
						if err := p.Send(ctx, a, i); err != nil {
							errs <- fmt.Errorf("send %d: %w", i, err)
							return
						}
					}
					errs <- nil
				}()
			}
			for range senders {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			if p.Recv != nil {
				for range n {
					i, err := p.Recv(ctx, b)
					if err != nil {
						t.Fatalf("receive after %d of %d: %v", seen.total(), n, err)
					}
					seen.add(i)
				}
			}
			if err := seen.check(); err != nil {
				t.Fatal(err)
			}
			Eventually(t, 10*time.Second, func() error { return statsAgree(a, b, uint64(n), p.Recv == nil) })
		})
		t.Run("DrainSender"+tr.name, func(t *testing.T) {
			// Drain is the graceful Close: what was sent before it is
			// delivered, even when the receiver takes it afterwards.
			seen := newTally(n)
			a, b := p.Open(t, tr.addr(t), seen.add)
			defer a.Close()
			defer b.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			connected(t, ctx, a, b)
			for i := range n {
				if err := p.Send(ctx, a, i); err != nil {
					t.Fatalf("send %d of %d: %v", i, n, err)
				}
			}
			d, ok := a.(drainer)
			if !ok {
				t.Fatalf("%T has no Drain(ctx) error", a)
			}
			if err := d.Drain(ctx); err != nil {
				t.Fatalf("%T.Drain: got %v, want nil", a, err)
			}
			if p.Recv != nil {
				for range n {
					i, err := p.Recv(ctx, b)
					if err != nil {
						t.Fatalf("receive after the sender drained, %d of %d: %v", seen.total(), n, err)
					}
					seen.add(i)
				}
			}
			if err := seen.check(); err != nil {
				t.Fatal(err)
			}
			Eventually(t, 10*time.Second, func() error { return peersAre(b, 0) })
		})
		if p.Recv != nil {
			// A receiver's Drain hands over what it accepted, then closes (a
			// serving side's Drain is checked by Run, with a handler running).
			t.Run("DrainReceiver"+tr.name, func(t *testing.T) {
				seen := newTally(n)
				a, b := p.Open(t, tr.addr(t), seen.add)
				defer a.Close()
				defer b.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				connected(t, ctx, a, b)
				for i := range n {
					if err := p.Send(ctx, a, i); err != nil {
						t.Fatalf("send %d of %d: %v", i, n, err)
					}
				}
				Eventually(t, 10*time.Second, func() error {
					st, err := CommonStats(b)
					if err != nil {
						return err
					}
					if st.Received != uint64(n) {
						return fmt.Errorf("%T Received: got %d, want %d", b, st.Received, n)
					}
					return nil
				})
				d, ok := b.(drainer)
				if !ok {
					t.Fatalf("%T has no Drain(ctx) error", b)
				}
				drained := goErr(func() error { return d.Drain(ctx) })
				for range n {
					i, err := p.Recv(ctx, b)
					if err != nil {
						t.Fatalf("receive while draining, after %d of %d: %v", seen.total(), n, err)
					}
					seen.add(i)
				}
				if err := seen.check(); err != nil {
					t.Fatal(err)
				}
				select {
				case err := <-drained:
					if err != nil {
						t.Fatalf("%T.Drain: got %v, want nil", b, err)
					}
				case <-ctx.Done():
					t.Fatalf("%T.Drain still blocked after every message was taken", b)
				}
				if _, err := p.Recv(ctx, b); !errors.Is(err, spmesh.ErrClosed) {
					t.Fatalf("receive after Drain: got %v, want ErrClosed", err)
				}
				Eventually(t, 10*time.Second, func() error { return peersAre(a, 0) })
			})
		}
		t.Run("CloseReceiver"+tr.name, func(t *testing.T) {
			a, b := p.Open(t, tr.addr(t), func(int) {})
			defer a.Close()
			defer b.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			connected(t, ctx, a, b)
			if err := b.Close(); err != nil {
				t.Fatalf("Close %T: %v", b, err)
			}
			Eventually(t, 10*time.Second, func() error { return peersAre(a, 0) })
		})
	}
}

// connected waits until a and b see each other: WaitPeers on both (the
// sender's side guarantees what is sent next is delivered), then Stats.
func connected(t *testing.T, ctx context.Context, a, b io.Closer) {
	t.Helper()
	for _, s := range []io.Closer{a, b} {
		w, ok := s.(waitPeers)
		if !ok {
			t.Fatalf("%T has no WaitPeers(ctx, n) error", s)
		}
		if err := w.WaitPeers(ctx, 1); err != nil {
			t.Fatalf("%T.WaitPeers(1): %v", s, err)
		}
		if err := peersAre(s, 1); err != nil {
			t.Fatal(err)
		}
	}
}

func peersAre(s io.Closer, n int) error {
	st, err := CommonStats(s)
	if err != nil {
		return err
	}
	if st.Peers != n {
		return fmt.Errorf("%T Stats().Peers: got %d, want %d", s, st.Peers, n)
	}
	return nil
}

// statsAgree compares the sides' counters after n messages (n calls when
// call: answers flow back).
func statsAgree(a, b io.Closer, n uint64, call bool) error {
	sa, err := CommonStats(a)
	if err != nil {
		return err
	}
	sb, err := CommonStats(b)
	if err != nil {
		return err
	}
	want := []struct {
		what      string
		got, want uint64
	}{
		{fmt.Sprintf("%T Sent", a), sa.Sent, n},
		{fmt.Sprintf("%T Received", b), sb.Received, n},
		{fmt.Sprintf("%T Dropped", a), sa.Dropped, 0},
		{fmt.Sprintf("%T Dropped", b), sb.Dropped, 0},
		{fmt.Sprintf("%T Resent", a), sa.Resent, 0},
		{fmt.Sprintf("%T BytesReceived (= %T BytesSent)", b, a), sb.BytesReceived, sa.BytesSent},
		{fmt.Sprintf("%T BytesReceived (= %T BytesSent)", a, b), sa.BytesReceived, sb.BytesSent},
	}
	if call {
		want = append(want, []struct {
			what      string
			got, want uint64
		}{
			{fmt.Sprintf("%T Sent", b), sb.Sent, n},
			{fmt.Sprintf("%T Received", a), sa.Received, n},
		}...)
	}
	for _, w := range want {
		if w.got != w.want {
			return fmt.Errorf("%s: got %d, want %d", w.what, w.got, w.want)
		}
	}
	if sa.BytesSent == 0 {
		return fmt.Errorf("%T BytesSent: got 0 after %d messages", a, n)
	}
	return nil
}

// CommonStats returns the spmesh.Stats of s: what its Stats method
// returns, or the spmesh.Stats embedded in it (the type-specific stats).
func CommonStats(s any) (spmesh.Stats, error) {
	m := reflect.ValueOf(s).MethodByName("Stats")
	if !m.IsValid() || m.Type().NumIn() != 0 || m.Type().NumOut() != 1 {
		return spmesh.Stats{}, fmt.Errorf("%T has no Stats() method", s)
	}
	v := m.Call(nil)[0]
	if st, ok := v.Interface().(spmesh.Stats); ok {
		return st, nil
	}
	if v.Kind() == reflect.Struct {
		if f := v.FieldByName("Stats"); f.IsValid() {
			if st, ok := f.Interface().(spmesh.Stats); ok {
				return st, nil
			}
		}
	}
	return spmesh.Stats{}, fmt.Errorf("%T.Stats() returns %s, which holds no spmesh.Stats", s, v.Type())
}

// tally counts which of n indices arrived, and how often.
type tally struct {
	mu     sync.Mutex
	counts []int
	bad    []int
}

func newTally(n int) *tally { return &tally{counts: make([]int, n)} }

func (c *tally) add(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.counts) {
		c.bad = append(c.bad, i)
		return
	}
	c.counts[i]++
}

func (c *tally) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.bad)
	for _, k := range c.counts {
		n += k
	}
	return n
}

// check says which indices did not arrive exactly once.
func (c *tally) check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.bad) > 0 {
		return fmt.Errorf("indices never sent arrived: %v", c.bad)
	}
	for i, k := range c.counts {
		if k != 1 {
			return fmt.Errorf("message %d arrived %d times, want once", i, k)
		}
	}
	return nil
}

// Open fails the test when err is not nil, and closes s when the test
// ends: for the pattern packages' Open functions.
func Open[S io.Closer](t testing.TB, s S, err error) S {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
