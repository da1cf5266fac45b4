package pubsub_test

import (
	"context"
	"fmt"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/pubsub"
)

type ImageReady struct {
	Path   string
	Width  int
	Height int
}

func Example() {
	pub, err := pubsub.NewPublisher(pubsub.WithListen("inproc://example-images"))
	if err != nil {
		panic(err)
	}
	defer pub.Close()
	sub, err := pubsub.NewSubscriber(pubsub.WithDial("inproc://example-images"), pubsub.WithSubscribe("images.*"))
	if err != nil {
		panic(err)
	}
	defer sub.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Pub/sub is at most once: messages published before the subscriber's
	// connection is up are not delivered, so publish until one arrives.
	for {
		pub.Publish(ctx, "images.ready", ImageReady{Path: "cat.jpg", Width: 640, Height: 480})
		wait, stop := context.WithTimeout(ctx, 10*time.Millisecond)
		m, err := sub.Next(wait)
		stop()
		if err != nil {
			continue
		}
		img, _ := spmesh.Decode[ImageReady](m)
		fmt.Println(m.Topic, img.Path, img.Width, img.Height)
		return
	}
	// Output: images.ready cat.jpg 640 480
}
