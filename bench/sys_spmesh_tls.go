package main

import (
	"sync"
	"time"

	"github.com/spmesh/spmesh/internal/pki"
	"github.com/spmesh/spmesh/pubsub"
	"github.com/spmesh/spmesh/reqrep"
)

// spmesh over tls+tcp:// with mutual TLS (TLS 1.3, ECDSA P-256
// certificates from a throwaway CA, both sides required, as the
// imagepipeline demo's -secure mode), for the TLS rows: pub/sub and
// req/rep only, compared with the plain spmesh rows of the same run.
func spmeshTLSSystem() *system {
	return &system{
		name:    "spmesh+tls",
		partial: true,
		pubsub: func(size, subs int) (*stream, error) {
			nw, err := tlsNet()
			if err != nil {
				return nil, err
			}
			return spmeshPubSubOver(nw, size, subs)
		},
		reqrep: func(size int) (*rpc, error) {
			nw, err := tlsNet()
			if err != nil {
				return nil, err
			}
			return spmeshReqRepOver(nw, size)
		},
	}
}

var tlsNetOnce = sync.OnceValues(func() (spmeshNet, error) {
	ca, err := pki.NewCA("bench CA")
	if err != nil {
		return spmeshNet{}, err
	}
	srvCert, err := ca.Issue("server", "127.0.0.1")
	if err != nil {
		return spmeshNet{}, err
	}
	cliCert, err := ca.Issue("client", "127.0.0.1")
	if err != nil {
		return spmeshNet{}, err
	}
	srv, cli := ca.Server(srvCert, true), ca.Client(&cliCert)
	return spmeshNet{
		listen: "tls+tcp://127.0.0.1:0",
		pub:    []pubsub.Option{pubsub.WithTLS(srv), pubsub.WithRequireTLS()},
		sub:    []pubsub.Option{pubsub.WithTLS(cli), pubsub.WithRequireTLS()},
		rep:    []reqrep.Option{reqrep.WithTLS(srv), reqrep.WithRequireTLS()},
		req:    []reqrep.Option{reqrep.WithTLS(cli), reqrep.WithRequireTLS()},
	}, nil
})

func tlsNet() (spmeshNet, error) { return tlsNetOnce() }

// spmeshLosslessSystem is spmesh's pub/sub in lossless mode
// (pubsub.WithBackpressure on both sides: credit-based flow control, the
// publisher blocks instead of dropping), compared with the default mode
// of the same run.
func spmeshLosslessSystem() *system {
	bp := pubsub.WithBackpressure(10 * time.Second)
	nw := spmeshNet{listen: loopback, pub: []pubsub.Option{bp}, sub: []pubsub.Option{bp}}
	return &system{
		name:    "spmesh+lossless",
		partial: true,
		pubsub:  func(size, subs int) (*stream, error) { return spmeshPubSubOver(nw, size, subs) },
	}
}
