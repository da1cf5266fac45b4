package pipeline

import (
	"context"
	"testing"
)

// The options reach the socket of a Producer and a Worker as they are (no
// copy of each setting to miss): WithStockTCP there, and the sptcp-only
// limits are refused with it on the pipeline's side.
func TestStockTCPCarriedOver(t *testing.T) {
	p, err := NewProducer(WithStockTCP())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !p.so.Settings.StockTCP {
		t.Error("Producer: WithStockTCP did not reach its socket")
	}
	w, err := NewWorker(HandlerFunc(func(ctx context.Context, j *Job) error { return nil }), WithStockTCP())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !w.so.Settings.StockTCP {
		t.Error("Worker: WithStockTCP did not reach its socket")
	}
	if _, err := newConfig(forWorker, []Option{WithStockTCP(), WithMaxConns(8)}); err == nil {
		t.Error("WithStockTCP with WithMaxConns accepted")
	}
}
