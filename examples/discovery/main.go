// Command discovery shows two peers that find each other by service name:
// each runs a gossip node (discovery.Node) on loopback, the second joins the
// first, and a requester on one reaches the replier on the other knowing only
// the service name "greeter". The gossip is encrypted with a shared key and
// labelled, so that only nodes holding both join; each node learns the
// other's endpoints from that node itself and checks them (see the
// discovery package doc). Both leave the mesh gracefully at the end.
//
//	go run ./examples/discovery
package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"
	"time"

	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/reqrep"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// One key and label for the whole mesh (in production, from a secret
	// store). Without a key, anyone who reaches the gossip port can join.
	key := make([]byte, 32)
	rand.Read(key)

	// Peer A: a gossip node and a replier advertised as "greeter".
	cfgA := discovery.LocalConfig() // loopback, free port, fast timings
	cfgA.Name = "peer-a"
	cfgA.SecretKey, cfgA.Label = key, "example"
	a, err := discovery.New(cfgA)
	if err != nil {
		log.Fatal(err)
	}
	defer a.Leave(ctx)
	rep, err := reqrep.NewReplier(reqrep.TypedHandler(
		func(ctx context.Context, req *reqrep.Request, name string) (string, error) {
			return "hello " + name + ", from peer-a", nil
		}), reqrep.WithDiscovery(a, "greeter"))
	if err != nil {
		log.Fatal(err)
	}
	defer rep.Close()

	// Peer B: joins through A's gossip address (the only address given) and
	// asks the "greeter" service, wherever it runs.
	cfgB := discovery.LocalConfig()
	cfgB.Name = "peer-b"
	cfgB.SecretKey, cfgB.Label = key, "example"
	cfgB.Seeds = []string{a.Addr()}
	b, err := discovery.New(cfgB)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Leave(ctx)
	rq, err := reqrep.NewRequester(reqrep.WithDiscovery(b, "greeter"), reqrep.WithWaitForReplier())
	if err != nil {
		log.Fatal(err)
	}
	defer rq.Close()

	for i := range 3 {
		reply, err := reqrep.Ask[string](ctx, rq, fmt.Sprintf("peer-b #%d", i+1))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(reply)
	}
	for _, m := range b.Members() {
		fmt.Printf("member %s, %d endpoint(s)\n", m.Name, len(m.Endpoints))
	}
	st := b.Stats() // what peer-b refused from other members: nothing here
	fmt.Printf("refused: %d endpoints, %d records\n", st.EndpointsRefused, st.RecordsRefused)
}
