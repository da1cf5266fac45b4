package pipeline

import (
	"strings"
	"testing"

	"github.com/spmesh/spmesh/reqrep"
)

// WithStockTCP reaches the reqrep socket of a Producer and a Worker: that
// socket then refuses the sptcp-only limits, which it only does with the
// stock transport set.
func TestStockTCPCarriedOver(t *testing.T) {
	for _, tg := range []target{forProducer, forWorker} {
		c, err := newConfig(tg, []Option{WithStockTCP()})
		if err != nil {
			t.Fatal(err)
		}
		if !c.sock.StockTCP {
			t.Fatalf("%v: WithStockTCP not set", tg)
		}
		opts := append(reqrepOptions(&c.sock), reqrep.WithMaxConns(8))
		rq, err := reqrep.NewRequester(opts...)
		if rq != nil {
			rq.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "stock TCP") {
			t.Errorf("%v: reqrep socket with the carried options and WithMaxConns = %v, want the stock TCP refusal", tg, err)
		}
	}
	// And the limits are refused on the pipeline's side too.
	if _, err := newConfig(forWorker, []Option{WithStockTCP(), WithMaxConns(8)}); err == nil {
		t.Error("WithStockTCP with WithMaxConns accepted")
	}
}
