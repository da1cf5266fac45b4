// Command reqrep shows request/reply wired by service name: two repliers
// serve "thumbnails", a requester spreads concurrent requests over them,
// and a handler error comes back as a typed remote error. Everything runs
// in this process over loopback TCP, wired through a discovery.Static
// registry.
//
//	go run ./examples/reqrep
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"slices"
	"sync"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/reqrep"
)

// Resize is the request.
type Resize struct {
	Image string
	Width int
}

// Thumb is the reply.
type Thumb struct {
	Image  string
	Width  int
	Server string
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg := discovery.NewStatic("127.0.0.1")
	defer reg.Close()

	for _, name := range []string{"replier-1", "replier-2"} {
		rep, err := reqrep.NewReplier(reqrep.TypedHandler(
			func(ctx context.Context, req *reqrep.Request, in Resize) (Thumb, error) {
				if in.Width <= 0 {
					return Thumb{}, spmesh.Errorf(400, "bad width %d", in.Width)
				}
				time.Sleep(20 * time.Millisecond) // some work, so requests overlap
				return Thumb{Image: in.Image, Width: in.Width, Server: name}, nil
			}), reqrep.WithDiscovery(reg, "thumbnails"))
		if err != nil {
			log.Fatal(err)
		}
		defer rep.Close()
	}
	rq, err := reqrep.NewRequester(reqrep.WithDiscovery(reg, "thumbnails"), reqrep.WithWaitForReplier())
	if err != nil {
		log.Fatal(err)
	}
	defer rq.Close()
	if err := rq.WaitPeers(ctx, 2); err != nil { // connections come up in the background
		log.Fatal(err)
	}

	// Concurrent requests spread over both repliers.
	var mu sync.Mutex
	served := map[string]int{}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			t, err := reqrep.Ask[Thumb](ctx, rq, Resize{Image: fmt.Sprintf("img-%d.jpg", i), Width: 128})
			if err != nil {
				log.Fatal(err)
			}
			mu.Lock()
			served[t.Server]++
			mu.Unlock()
		})
	}
	wg.Wait()
	var names []string
	for name := range served {
		names = append(names, name)
	}
	slices.Sort(names)
	fmt.Println("8 requests served by", names)

	// A handler error arrives as *spmesh.RemoteError, code included.
	_, err = reqrep.Ask[Thumb](ctx, rq, Resize{Image: "bad.jpg", Width: -1})
	var re *spmesh.RemoteError
	if errors.As(err, &re) {
		fmt.Println("remote error:", re.Code, re.Message)
	}
}
