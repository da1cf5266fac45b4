package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pipeline"
)

// TestPushOrderMixedContexts pushes from one goroutine with contexts that
// cannot end (which Push may hand to mangos itself) and ones that can (which
// go through the Pusher's queue): the puller must see them in push order.
func TestPushOrderMixedContexts(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		pl := mustPuller(t)
		p := mustPusher(t, pipeline.WithDial(listen(t, pl, addr)))
		peers(t, p, 1)
		ctx := ctxT(t, 10*time.Second)
		const n = 2000
		go func() {
			for i := range n {
				c := context.Background()
				if i%3 != 0 {
					c = ctx
				}
				if err := p.Push(c, i); err != nil {
					return // the receiving side reports the gap
				}
			}
		}()
		for want := range n {
			m, err := pl.Next(ctx)
			if err != nil {
				t.Fatalf("message %d: %v", want, err)
			}
			got, err := spmesh.Decode[int](m)
			if err != nil || got != want {
				t.Fatalf("got message %d (%v), want %d", got, err, want)
			}
		}
	})
}

// TestPushBackgroundUnblocksOnClose: a Push whose ctx cannot end, waiting
// for room or for a puller, returns ErrClosed when the Pusher closes.
func TestPushBackgroundUnblocksOnClose(t *testing.T) {
	for _, withPuller := range []bool{false, true} {
		t.Run(fmt.Sprintf("puller=%v", withPuller), func(t *testing.T) {
			var opts []pipeline.Option
			if withPuller {
				pl := mustPuller(t, pipeline.WithQueueLen(1)) // never read
				opts = append(opts, pipeline.WithDial(listen(t, pl, testutil.Inproc(t))))
			}
			p, err := pipeline.NewPusher(append(opts, pipeline.WithQueueLen(1))...)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if withPuller {
				peers(t, p, 1)
			}
			done := make(chan error, 1)
			go func() {
				for {
					if err := p.Push(context.Background(), 1); err != nil {
						done <- err
						return
					}
				}
			}()
			if withPuller {
				// Wait until pushes went through (the pusher then blocks once
				// the puller's queues are full).
				testutil.Eventually(t, 10*time.Second, func() error {
					if got := p.Stats().Sent; got < 2 {
						return fmt.Errorf("sent: got %d, want at least 2", got)
					}
					return nil
				})
			}
			p.Close()
			select {
			case err := <-done:
				if !errors.Is(err, spmesh.ErrClosed) {
					t.Fatalf("push after close: got %v, want ErrClosed", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("push still blocked 10s after Close, want ErrClosed")
			}
		})
	}
}
