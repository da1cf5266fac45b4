package reqrep_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/reqrep"
)

type Resize struct {
	Image string
	Width int
}

type Thumb struct {
	Image string
	Bytes int
}

func Example() {
	rep, err := reqrep.NewReplier(reqrep.TypedHandler(
		func(ctx context.Context, req *reqrep.Request, in Resize) (Thumb, error) {
			return Thumb{Image: in.Image, Bytes: in.Width * in.Width / 4}, nil
		}), reqrep.WithListen("inproc://example-thumbs"))
	if err != nil {
		panic(err)
	}
	defer rep.Close()

	// WithWaitForReplier: the dial is asynchronous, so wait for the replier
	// instead of failing with ErrNoPeers before the connection is up.
	rq, err := reqrep.NewRequester(reqrep.WithDial("inproc://example-thumbs"), reqrep.WithWaitForReplier())
	if err != nil {
		panic(err)
	}
	defer rq.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	thumb, err := reqrep.Ask[Thumb](ctx, rq, Resize{Image: "cat.jpg", Width: 128})
	if err != nil {
		panic(err)
	}
	fmt.Println(thumb.Image, thumb.Bytes)
	// Output: cat.jpg 4096
}

func ExampleHandlerFunc_remoteError() {
	rep, _ := reqrep.NewReplier(reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		var name string
		if err := req.Decode(&name); err != nil {
			return nil, err
		}
		return nil, spmesh.Errorf(404, "no image %q", name)
	}), reqrep.WithListen("inproc://example-errors"))
	defer rep.Close()
	rq, _ := reqrep.NewRequester(reqrep.WithDial("inproc://example-errors"), reqrep.WithWaitForReplier())
	defer rq.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := rq.Request(ctx, "dog.png", nil)
	var re *spmesh.RemoteError
	if errors.As(err, &re) {
		fmt.Println(re.Code, re.Message)
	}
	// Output: 404 no image "dog.png"
}

func ExampleRequester_RequestHeader() {
	rep, _ := reqrep.NewReplier(reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		req.SetReplyHeader("served-by", "replier-1")
		return "hello " + req.Header.Get("user"), nil
	}), reqrep.WithListen("inproc://example-headers"))
	defer rep.Close()
	rq, _ := reqrep.NewRequester(reqrep.WithDial("inproc://example-headers"), reqrep.WithWaitForReplier())
	defer rq.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var greeting string
	h, err := rq.RequestHeader(ctx, spmesh.Header{"user": "ada"}, "hi", &greeting)
	if err != nil {
		panic(err)
	}
	fmt.Println(greeting, "/", h.Get("served-by"))
	// Output: hello ada / replier-1
}

func ExampleRequester_Do() {
	rep, _ := reqrep.NewReplier(reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		// Attempt > 1 means an earlier attempt may have been handled:
		// a handler de-duplicates on req.ID when its work is not idempotent.
		return fmt.Sprintf("attempt %d", req.Attempt), nil
	}), reqrep.WithListen("inproc://example-do"))
	defer rep.Close()
	rq, _ := reqrep.NewRequester(reqrep.WithDial("inproc://example-do"), reqrep.WithWaitForReplier())
	defer rq.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A caller retrying on its own keeps the ID and continues the count.
	id := reqrep.ID{0xca, 0xfe}
	reply, err := rq.Do(ctx, &reqrep.Call{ID: id, Attempt: 3, MaxAttempts: 5, Body: "job"})
	if err != nil {
		panic(err)
	}
	var s string
	reply.Decode(&s)
	fmt.Println(s, reply.ID == id)
	// Output: attempt 3 true
}
