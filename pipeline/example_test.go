package pipeline_test

import (
	"context"
	"fmt"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/pipeline"
)

func Example() {
	type Job struct{ Image string }

	// A worker pulls jobs; a producer pushes them. Over TCP, or found by
	// service name with WithDiscovery, the code is the same.
	puller, err := pipeline.NewPuller(pipeline.WithListen("inproc://example-thumbnails"))
	if err != nil {
		panic(err)
	}
	defer puller.Close()
	pusher, err := pipeline.NewPusher(pipeline.WithDial("inproc://example-thumbnails"))
	if err != nil {
		panic(err)
	}
	defer pusher.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, img := range []string{"cat.jpg", "dog.jpg", "owl.jpg"} {
		// Push waits (until ctx ends) for a puller to take the job.
		if err := pusher.Push(ctx, Job{Image: img}); err != nil {
			panic(err)
		}
	}
	for range 3 {
		m, err := puller.Next(ctx)
		if err != nil {
			panic(err)
		}
		job, err := spmesh.Decode[Job](m)
		if err != nil {
			panic(err)
		}
		fmt.Println("thumbnail", job.Image)
	}
	// Output:
	// thumbnail cat.jpg
	// thumbnail dog.jpg
	// thumbnail owl.jpg
}
