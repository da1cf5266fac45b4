package pipeline

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkOutboxCommit compares the outbox's own group commit (one writer
// goroutine committing every put waiting, no delay) with bbolt's DB.Batch
// (which waits up to MaxBatchDelay, 10ms by default, to fill a batch), for
// 1 and 64 goroutines each storing 256 B jobs one after another, each
// waiting for its fsync.
func BenchmarkOutboxCommit(b *testing.B) {
	for _, g := range []int{1, 64} {
		b.Run(fmt.Sprintf("writer/goroutines=%d", g), func(b *testing.B) {
			ob, _, err := openOutbox(filepath.Join(b.TempDir(), "ob.db"), 1<<30, 1<<40, false, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer ob.close()
			quit := make(chan struct{})
			parallel(b, g, func() error {
				return ob.put(context.Background(), quit, &record{attempt: 1, data: make([]byte, 256)})
			})
		})
		b.Run(fmt.Sprintf("bbolt-batch/goroutines=%d", g), func(b *testing.B) {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "b.db"), 0o600, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(outboxBucket); return err })
			var seq atomic.Uint64
			parallel(b, g, func() error {
				r := &record{seq: seq.Add(1), attempt: 1, data: make([]byte, 256)}
				return db.Batch(func(tx *bolt.Tx) error {
					v, err := r.marshal()
					if err != nil {
						return err
					}
					var k [8]byte
					binary.BigEndian.PutUint64(k[:], r.seq)
					return tx.Bucket(outboxBucket).Put(k[:], v)
				})
			})
		})
	}
}

// parallel runs f b.N times over g goroutines.
func parallel(b *testing.B, g int, f func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range g {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := f(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}
