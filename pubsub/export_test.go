package pubsub

import "github.com/spmesh/spmesh/internal/sock"

// Limits for the tests in package pubsub_test.
const (
	MaxBatchFrame    = sock.MaxBatchFrame
	LegacyBatchFrame = sock.LegacyBatchFrame
	MaxPendingBytes  = maxPendingBytes
)
