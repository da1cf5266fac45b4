package reqrep_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/reqrep"
	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/rep"
	"go.nanomsg.org/mangos/v3/protocol/req"
)

// The benchmarks compare spmesh request/reply with raw mangos REQ/REP in the
// same run, with a 256-byte payload echoed back:
//
//	go test -run '^$' -bench . -benchtime 1s ./reqrep/
//
// BenchmarkRoundTrip is one sequential caller and reports the latency
// percentiles (p50-us, p99-us); BenchmarkThroughput runs 1 and 16
// concurrent callers on one socket and reports round trips per second.

const payloadSize = 256

// pair is a connected requester side: call does one round trip.
type pair struct {
	call  func() error
	close func()
}

// spmeshPair opens a Replier echoing the payload and a Requester dialing it.
// codec "raw" echoes bytes untouched; "msgpack" decodes and re-encodes.
func spmeshPair(b *testing.B, addr, codec string) pair {
	b.Helper()
	c := spmesh.Raw
	h := reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		return req.Data, nil
	})
	if codec == "msgpack" {
		c = spmesh.Msgpack
		h = func(ctx context.Context, req *reqrep.Request) (any, error) {
			var p []byte
			err := req.Decode(&p)
			return p, err
		}
	}
	rp, err := reqrep.NewReplier(h, reqrep.WithListen(addr), reqrep.WithCodec(c))
	if err != nil {
		b.Fatal(err)
	}
	rq, err := reqrep.NewRequester(reqrep.WithDial(rp.Addrs()[0]), reqrep.WithCodec(c))
	if err != nil {
		b.Fatal(err)
	}
	peers(b, rq, 1)
	payload := make([]byte, payloadSize)
	ctx := context.Background()
	var bufs sync.Pool
	return pair{
		call: func() error {
			bp, _ := bufs.Get().(*[]byte)
			if bp == nil {
				bp = new([]byte)
			}
			err := rq.Request(ctx, payload, bp)
			if err == nil && len(*bp) != payloadSize {
				b.Fatalf("reply: got %d bytes, want %d", len(*bp), payloadSize)
			}
			bufs.Put(bp)
			return err
		},
		close: func() { rq.Close(); rp.Close() },
	}
}

// mangosPair opens raw mangos REQ and REP sockets; the REP side serves on
// 16 contexts, the REQ side gives each caller its own context.
func mangosPair(b *testing.B, addr string) (pair, func() mangos.Context) {
	b.Helper()
	rs, err := rep.NewSocket()
	if err != nil {
		b.Fatal(err)
	}
	l, err := rs.NewListener(addr, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := l.Listen(); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 16 {
		rc, err := rs.OpenContext()
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			for {
				m, err := rc.RecvMsg()
				if err != nil {
					return
				}
				if rc.SendMsg(m) != nil {
					return
				}
			}
		})
	}
	qs, err := req.NewSocket()
	if err != nil {
		b.Fatal(err)
	}
	var connected atomic.Bool
	qs.SetPipeEventHook(func(ev mangos.PipeEvent, _ mangos.Pipe) {
		if ev == mangos.PipeEventAttached {
			connected.Store(true)
		}
	})
	if err := qs.Dial(l.Address()); err != nil {
		b.Fatal(err)
	}
	testutil.Eventually(b, 10*time.Second, func() error {
		if !connected.Load() {
			return mangos.ErrClosed
		}
		return nil
	})
	newCtx := func() mangos.Context {
		c, err := qs.OpenContext()
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	payload := make([]byte, payloadSize)
	return pair{
		call: func() error {
			if err := qs.Send(payload); err != nil {
				return err
			}
			r, err := qs.Recv()
			if err == nil && len(r) != payloadSize {
				b.Fatalf("reply: got %d bytes, want %d", len(r), payloadSize)
			}
			return err
		},
		close: func() { qs.Close(); rs.Close(); wg.Wait() },
	}, newCtx
}

func benchAddr(b *testing.B, tr string) string {
	if tr == "inproc" {
		return testutil.Inproc(b)
	}
	return "tcp://127.0.0.1:0"
}

func mangosListenAddr(b *testing.B, tr string) string {
	if tr == "inproc" {
		return testutil.Inproc(b)
	}
	return testutil.FreeTCP(b)
}

func BenchmarkRoundTrip(b *testing.B) {
	for _, tr := range []string{"inproc", "tcp"} {
		b.Run(tr+"/mangos", func(b *testing.B) {
			p, _ := mangosPair(b, mangosListenAddr(b, tr))
			defer p.close()
			latencies(b, p.call)
		})
		for _, codec := range []string{"raw", "msgpack"} {
			b.Run(tr+"/spmesh-"+codec, func(b *testing.B) {
				p := spmeshPair(b, benchAddr(b, tr), codec)
				defer p.close()
				latencies(b, p.call)
			})
		}
	}
}

// latencies runs call b.N times in sequence and reports p50 and p99.
func latencies(b *testing.B, call func() error) {
	lat := make([]time.Duration, 0, b.N)
	b.SetBytes(2 * payloadSize)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := call(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-us")
}

func BenchmarkThroughput(b *testing.B) {
	for _, conc := range []int{1, 16} {
		name := map[int]string{1: "callers=1", 16: "callers=16"}[conc]
		b.Run("tcp/mangos/"+name, func(b *testing.B) {
			p, newCtx := mangosPair(b, testutil.FreeTCP(b))
			defer p.close()
			payload := make([]byte, payloadSize)
			parallel(b, conc, func() func() error {
				c := newCtx()
				return func() error {
					if err := c.Send(payload); err != nil {
						return err
					}
					_, err := c.Recv()
					return err
				}
			})
		})
		b.Run("tcp/spmesh-raw/"+name, func(b *testing.B) {
			p := spmeshPair(b, "tcp://127.0.0.1:0", "raw")
			defer p.close()
			parallel(b, conc, func() func() error { return p.call })
		})
	}
}

// parallel runs b.N calls over conc goroutines (each with its own call
// function from mk) and reports round trips per second.
func parallel(b *testing.B, conc int, mk func() func() error) {
	calls := make([]func() error, conc)
	for i := range calls {
		calls[i] = mk()
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	b.SetBytes(2 * payloadSize)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for _, call := range calls {
		wg.Go(func() {
			for n.Add(1) <= int64(b.N) {
				if err := call(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rt/s")
}
