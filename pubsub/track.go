package pubsub

// maxTracked bounds the sequence table (publisher/topic pairs) and the
// per-publisher counters (Stats().Publishers), each. Both are kept in two
// generations of at most maxTracked/2 entries: an entry seen again moves
// to the current generation, and when the current one is full the previous
// one is forgotten. So past the bound the least recently seen entries go
// (a forgotten pair's next message starts its sequence afresh, a forgotten
// publisher's counters start from zero) and the recent ones keep counting.
const maxTracked = 4096

// recall returns k's entry from the current generation cur or the previous
// one old, moving it to cur when found in old. Called with seqMu held.
func recall[K comparable, V any](cur, old *map[K]V, k K) (v V, ok bool) {
	if v, ok = (*cur)[k]; ok {
		return v, true
	}
	if v, ok = (*old)[k]; ok {
		delete(*old, k)
		remember(cur, old, k, v)
	}
	return v, ok
}

// remember adds k to the current generation; when it holds maxTracked/2
// entries, it becomes the previous generation and the one before is
// forgotten. Called with seqMu held.
func remember[K comparable, V any](cur, old *map[K]V, k K, v V) {
	if len(*cur) >= maxTracked/2 {
		*old, *cur = *cur, make(map[K]V, maxTracked/2)
	}
	if *cur == nil {
		*cur = map[K]V{}
	}
	(*cur)[k] = v
}
