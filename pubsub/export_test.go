package pubsub

// Limits for the tests in package pubsub_test.
const (
	MaxBatchFrame   = maxBatchFrame
	MaxPendingBytes = maxPendingBytes
)
