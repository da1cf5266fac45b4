// Command pubsub shows publish/subscribe wired by service name: one
// publisher announces images on topics, two subscribers pick what they want
// with wildcard patterns. Everything runs in this process over loopback TCP,
// wired through a discovery.Static registry (a gossip discovery.Node works
// the same way across hosts).
//
//	go run ./examples/pubsub
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/pubsub"
)

// ImageReady is the announcement.
type ImageReady struct {
	Path  string
	Bytes int
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg := discovery.NewStatic("127.0.0.1")
	defer reg.Close()

	pub, err := pubsub.NewPublisher(pubsub.WithDiscovery(reg, "images"))
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close()
	all, err := pubsub.NewSubscriber(pubsub.WithDiscovery(reg, "images"), pubsub.WithSubscribe("images.>"))
	if err != nil {
		log.Fatal(err)
	}
	defer all.Close()
	jpegs, err := pubsub.NewSubscriber(pubsub.WithDiscovery(reg, "images"), pubsub.WithSubscribe("images.*.jpeg"))
	if err != nil {
		log.Fatal(err)
	}
	defer jpegs.Close()

	// Pub/sub is at most once: a subscriber gets only what is published
	// while it is connected. Wait for both connections before publishing:
	// once the publisher holds them, what it publishes reaches both.
	if err := pub.WaitPeers(ctx, 2); err != nil {
		log.Fatal(err)
	}

	for i, topic := range []string{"images.ready.jpeg", "images.ready.png", "images.deleted.jpeg"} {
		if err := pub.Publish(ctx, topic, ImageReady{Path: fmt.Sprintf("img-%d", i+1), Bytes: 1000 * (i + 1)}); err != nil {
			log.Fatal(err)
		}
	}

	for _, s := range []struct {
		pattern string
		sub     *pubsub.Subscriber
		want    int
	}{{"images.>", all, 3}, {"images.*.jpeg", jpegs, 2}} {
		for range s.want {
			m, err := s.sub.Next(ctx)
			if err != nil {
				log.Fatal(err)
			}
			img, err := spmesh.Decode[ImageReady](m)
			if err != nil {
				log.Fatal(err)
			}
			fmt.Printf("%-14s got %-20s %s (%d bytes), seq %d\n", s.pattern, m.Topic, img.Path, img.Bytes, m.Seq)
		}
	}
	fmt.Println("dropped:", all.Stats().Dropped+jpegs.Stats().Dropped)
}
