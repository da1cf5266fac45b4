package pipeline

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkOutboxCommit compares the outbox's own group commit (one writer
// goroutine committing every put waiting, no delay) with bbolt's DB.Batch
// (which waits up to MaxBatchDelay, 10ms by default, to fill a batch), for
// 1 to 512 goroutines each storing 256 B jobs one after another, each
// waiting for its fsync. writer+remove also deletes each job once stored,
// as an ack does (the delete rides on a later commit). jobs/commit is the
// mean group-commit batch (each bbolt commit is 2 fdatasyncs: the pages,
// then the meta page).
func BenchmarkOutboxCommit(b *testing.B) {
	for _, g := range []int{1, 8, 64, 512} {
		for _, rm := range []bool{false, true} {
			name := "writer"
			if rm {
				name = "writer+remove"
			}
			b.Run(fmt.Sprintf("%s/goroutines=%d", name, g), func(b *testing.B) {
				ob, _, err := openOutbox(filepath.Join(b.TempDir(), "ob.db"), 1<<30, 1<<40, false, 0, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer ob.close()
				quit := make(chan struct{})
				tx0 := lastTx(b, ob.db)
				parallel(b, g, func() error {
					r := &record{attempt: 1, data: make([]byte, 256)}
					if err := ob.put(context.Background(), quit, r); err != nil {
						return err
					}
					if rm {
						ob.remove(r.seq, r.size())
					}
					return nil
				})
				if commits := lastTx(b, ob.db) - tx0; commits > 0 {
					b.ReportMetric(float64(b.N)/float64(commits), "jobs/commit")
				}
			})
		}
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

// TestOutboxPeriodicSync: with an fsync interval, the writer fsyncs the
// file when a commit happened since the last fsync, every interval and at
// close, and not when nothing changed.
func TestOutboxPeriodicSync(t *testing.T) {
	put := func(t *testing.T, ob *outbox) {
		t.Helper()
		if err := ob.put(context.Background(), nil, &record{attempt: 1, data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	open := func(t *testing.T, path string, every time.Duration) *outbox {
		t.Helper()
		ob, _, err := openOutbox(path, 100, 1<<20, false, every, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ob
	}
	path := filepath.Join(t.TempDir(), "ob.db")

	ob := open(t, path, time.Hour) // never within the test: only close fsyncs
	if err := ob.close(); err != nil {
		t.Fatal(err)
	}
	if got := ob.syncs.Load(); got != 0 {
		t.Fatalf("fsyncs at close with nothing committed: got %d, want 0", got)
	}
	ob = open(t, path, time.Hour)
	put(t, ob)
	if err := ob.close(); err != nil {
		t.Fatal(err)
	}
	if got := ob.syncs.Load(); got != 1 {
		t.Fatalf("fsyncs at close after a commit: got %d, want 1", got)
	}

	ob = open(t, path, time.Millisecond)
	put(t, ob)
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := ob.syncs.Load(); got == 0 {
			return errors.New("no periodic fsync after a commit")
		}
		return nil
	})
	if err := ob.close(); err != nil {
		t.Fatal(err)
	}
}

// lastTx returns the id of db's last committed write transaction.
func lastTx(b *testing.B, db *bolt.DB) (id int) {
	if err := db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		b.Fatal(err)
	}
	return id
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
