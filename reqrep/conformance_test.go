package reqrep_test

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/reqrep"
)

// TestConformance runs the shared suite on both sides of req/rep, enveloped
// and bare, and the pair check on the two wired together.
func TestConformance(t *testing.T) {
	testutil.Conform(t, map[string]testutil.Pattern{
		"Requester":      requesterPattern(),
		"Requester/bare": confRequester(reqrep.WithBareFrames()),
		"Replier":        confReplier(),
		"Replier/bare":   confReplier(reqrep.WithBareFrames()),
	}, map[string]testutil.Pair{
		"Requester+Replier":                confPair(false),
		"Requester+Replier/bare":           confPair(false, reqrep.WithBareFrames()),
		"Requester+Replier/requesterBinds": confPair(true),
	})
}

// confHandler answers every request with its index, after calling h.
func confHandler(h func(ctx context.Context, i int) error) reqrep.Handler {
	return reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		var i int
		if err := req.Decode(&i); err != nil {
			return nil, err
		}
		if err := h(ctx, i); err != nil {
			return nil, err
		}
		return i, nil
	})
}

func confRequester(opts ...reqrep.Option) testutil.Pattern {
	return testutil.Pattern{
		Open: func(t *testing.T, addr string) io.Closer {
			r, err := reqrep.NewRequester(append(opts, reqrep.WithListen(addr), reqrep.WithWaitForReplier())...)
			return testutil.Open(t, r, err)
		},
		Listens: true,
		Wait: func(ctx context.Context, s io.Closer) error {
			return s.(*reqrep.Requester).Request(ctx, 1, nil)
		},
		Invalid: map[string]func() error{
			"side mismatch": func() error {
				_, err := reqrep.NewRequester(append(opts, reqrep.WithConcurrency(4))...)
				return err
			},
			"queue zero": func() error { _, err := reqrep.NewRequester(append(opts, reqrep.WithQueueLen(0))...); return err },
		},
	}
}

// confReplier is the serving side: it has no call of its own that waits,
// so the suite waits with WaitPeers and checks Drain and Close with a
// requester connected and a handler running.
func confReplier(opts ...reqrep.Option) testutil.Pattern {
	open := func(t *testing.T, addr string, h func(ctx context.Context) error) io.Closer {
		r, err := reqrep.NewReplier(confHandler(func(ctx context.Context, _ int) error { return h(ctx) }),
			append(opts, reqrep.WithListen(addr))...)
		return testutil.Open(t, r, err)
	}
	var proto uint16 // bare: any bytes are a request, none hostile
	if len(opts) == 0 {
		proto = testutil.ProtoReq
	}
	return testutil.Pattern{
		Open: func(t *testing.T, addr string) io.Closer {
			return open(t, addr, func(context.Context) error { return nil })
		},
		Listens: true,
		Invalid: map[string]func() error{
			"nil handler": func() error { _, err := reqrep.NewReplier(nil, opts...); return err },
			"concurrency 0": func() error {
				_, err := reqrep.NewReplier(confHandler(nil), append(opts, reqrep.WithConcurrency(0))...)
				return err
			},
			"credit 0": func() error {
				_, err := reqrep.NewReplier(confHandler(nil), append(opts, reqrep.WithCredit(0))...)
				return err
			},
			"queue zero": func() error {
				_, err := reqrep.NewReplier(confHandler(nil), append(opts, reqrep.WithQueueLen(0))...)
				return err
			},
			"requester-only": func() error {
				_, err := reqrep.NewReplier(confHandler(nil), append(opts, reqrep.WithWaitForReplier())...)
				return err
			},
			"bad address": func() error {
				_, err := reqrep.NewReplier(confHandler(nil), append(opts, reqrep.WithListen("foo://x"))...)
				return err
			},
		},
		Serve: &testutil.Serve{
			Open:  open,
			Proto: proto,
			Peer: func(t *testing.T, addr string) io.Closer {
				r, err := reqrep.NewRequester(append(opts, reqrep.WithDial(addr), reqrep.WithWaitForReplier())...)
				return testutil.Open(t, r, err)
			},
			Call: func(ctx context.Context, peer io.Closer) error {
				var got int
				if err := peer.(*reqrep.Requester).Request(ctx, 7, &got); err != nil {
					return err
				}
				if got != 7 {
					return fmt.Errorf("reply: got %d, want 7", got)
				}
				return nil
			},
		},
	}
}

// confPair: a replier listens, a requester dials it (the other way round
// when rev); request i is the int i, answered with i.
func confPair(rev bool, opts ...reqrep.Option) testutil.Pair {
	return testutil.Pair{
		Open: func(t *testing.T, addr string, got func(int)) (io.Closer, io.Closer) {
			listen, dial := reqrep.WithListen(addr), reqrep.WithDial(addr)
			if rev {
				listen, dial = dial, listen
			}
			rp, err := reqrep.NewReplier(confHandler(func(_ context.Context, i int) error { got(i); return nil }),
				append(opts, listen)...)
			b := testutil.Open(t, rp, err)
			rq, err := reqrep.NewRequester(append(opts, dial, reqrep.WithWaitForReplier())...)
			return testutil.Open(t, rq, err), b
		},
		Send: func(ctx context.Context, a io.Closer, i int) error {
			var got int
			if err := a.(*reqrep.Requester).Request(ctx, i, &got); err != nil {
				return err
			}
			if got != i {
				return fmt.Errorf("reply to %d: got %d", i, got)
			}
			return nil
		},
	}
}
