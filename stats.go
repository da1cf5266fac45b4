package spmesh

// Stats are a socket's counters since it was opened. Every pattern type has a
// Stats method returning them (some add pattern-specific detail).
type Stats struct {
	Sent         uint64 // messages handed to the transport
	Received     uint64 // messages delivered to the application
	Dropped      uint64 // messages known lost (queue overflow, sequence gaps, late answers)
	Resent       uint64 // retransmissions (requests, redelivered jobs)
	DecodeErrors uint64 // frames or payloads that failed to decode and were discarded
	Peers        int    // connections currently established
}
