package pubsub_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pubsub"
	"go.nanomsg.org/mangos/v3"
	mpub "go.nanomsg.org/mangos/v3/protocol/pub"
	msub "go.nanomsg.org/mangos/v3/protocol/sub"
)

// The benchmarks publish through a window of at most `window` messages in
// flight, so that nothing is dropped and the figure is delivered messages.
const window = 64

var sizes = []int{16, 256, 4096}

func benchAddrs(b *testing.B) map[string]func() string {
	return map[string]func() string{
		"inproc": func() string { return testutil.Inproc(b) },
		"tcp":    func() string { return testutil.FreeTCP(b) },
	}
}

func BenchmarkPublishReceive(b *testing.B) {
	for _, tr := range []string{"inproc", "tcp"} {
		for _, size := range sizes {
			b.Run(fmt.Sprintf("spmesh/%s/%dB", tr, size), func(b *testing.B) { benchSpmesh(b, benchAddrs(b)[tr](), size) })
			b.Run(fmt.Sprintf("spmesh-bare/%s/%dB", tr, size), func(b *testing.B) {
				benchSpmesh(b, benchAddrs(b)[tr](), size, pubsub.WithBareFrames())
			})
			b.Run(fmt.Sprintf("mangos/%s/%dB", tr, size), func(b *testing.B) { benchMangos(b, benchAddrs(b)[tr](), size) })
		}
	}
}

func benchSpmesh(b *testing.B, addr string, size int, opts ...pubsub.Option) {
	p, err := pubsub.NewPublisher(append([]pubsub.Option{pubsub.WithListen(addr), pubsub.WithCodec(spmesh.Raw)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	s, err := pubsub.NewSubscriber(append([]pubsub.Option{pubsub.WithDial(addr), pubsub.WithSubscribe("bench.data"), pubsub.WithCodec(spmesh.Raw)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	payload := make([]byte, size)
	testutil.Eventually(b, 10*time.Second, func() error {
		p.Publish(ctx, "bench.data", payload)
		c, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		defer cancel()
		_, err := s.Next(c)
		return err
	})
	for s.Stats().Publishers[p.ID()].Received != 0 && len(s.C()) > 0 {
		<-s.C()
	}
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		for n := 0; n < b.N; n++ {
			if _, err := s.Next(c); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for int64(i)-got.Load() >= window {
			select {
			case <-done:
				b.Fatalf("receiver gave up after %d of %d: %+v", got.Load(), b.N, s.Stats().Stats)
			default:
			}
			runtime.Gosched()
		}
		if err := p.Publish(ctx, "bench.data", payload); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	if st := s.Stats(); st.Dropped != 0 {
		b.Fatalf("dropped %d", st.Dropped)
	}
}

func benchMangos(b *testing.B, addr string, size int) {
	p, _ := mpub.NewSocket()
	defer p.Close()
	if err := p.Listen(addr); err != nil {
		b.Fatal(err)
	}
	s, _ := msub.NewSocket()
	defer s.Close()
	s.SetOption(mangos.OptionSubscribe, []byte("bench.data"))
	s.SetOption(mangos.OptionDialAsynch, true)
	s.Dial(addr)
	payload := append([]byte("bench.data\x00"), make([]byte, size)...)
	s.SetOption(mangos.OptionRecvDeadline, 10*time.Millisecond)
	testutil.Eventually(b, 10*time.Second, func() error {
		p.Send(payload)
		_, err := s.Recv()
		return err
	})
	for {
		if _, err := s.Recv(); err != nil {
			break
		}
	}
	s.SetOption(mangos.OptionRecvDeadline, 5*time.Second)
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 0; n < b.N; n++ {
			m, err := s.RecvMsg()
			if err != nil {
				return
			}
			m.Free()
			got.Add(1)
		}
	}()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for int64(i)-got.Load() >= window {
			select {
			case <-done:
				b.Fatalf("receiver gave up after %d of %d", got.Load(), b.N)
			default:
			}
			runtime.Gosched()
		}
		m := mangos.NewMessage(len(payload))
		m.Body = append(m.Body, payload...)
		if err := p.SendMsg(m); err != nil {
			b.Fatal(err)
		}
	}
	<-done
}

// BenchmarkLatency publishes one message at a time and waits for it: the
// figure is the one-way latency of a lone message (plus the wake-up of the
// receiver), with batching on and off.
func BenchmarkLatency(b *testing.B) {
	for _, tr := range []string{"inproc", "tcp"} {
		for _, batching := range []bool{true, false} {
			b.Run(fmt.Sprintf("%s/batching=%v", tr, batching), func(b *testing.B) {
				addr := benchAddrs(b)[tr]()
				p, err := pubsub.NewPublisher(pubsub.WithListen(addr), pubsub.WithCodec(spmesh.Raw), pubsub.WithBatching(batching))
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				s, err := pubsub.NewSubscriber(pubsub.WithDial(addr), pubsub.WithSubscribe("lat"), pubsub.WithCodec(spmesh.Raw))
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				ctx := context.Background()
				payload := make([]byte, 64)
				testutil.Eventually(b, 10*time.Second, func() error {
					p.Publish(ctx, "lat", payload)
					c, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
					defer cancel()
					_, err := s.Next(c)
					return err
				})
				for len(s.C()) > 0 {
					<-s.C()
				}
				c, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if err := p.Publish(ctx, "lat", payload); err != nil {
						b.Fatal(err)
					}
					if _, err := s.Next(c); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
