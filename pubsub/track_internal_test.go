package pubsub

import "testing"

// TestTrackedBoundKeepsRecent: past maxTracked publishers, the ones not
// seen for long are forgotten, while a publisher that keeps sending keeps
// its counts (received and gaps) in Stats().Publishers.
func TestTrackedBoundKeepsRecent(t *testing.T) {
	s := testSubscriber(t)
	const recent = 1
	var seq, received, gaps uint64
	for i := range 3 * maxTracked {
		s.track([]Message{{Publisher: uint64(1000 + i), Topic: "t", Seq: 1}})
		if i%100 == 0 {
			seq++
			if i%700 == 0 && i > 0 {
				seq++ // one message lost
				gaps++
			}
			received++
			s.track([]Message{{Publisher: recent, Topic: "t", Seq: seq}})
		}
	}
	st := s.Stats()
	if got, want := st.Publishers[recent], (PublisherStats{Received: received, Gaps: gaps}); got != want {
		t.Errorf("recent publisher: got %+v, want %+v", got, want)
	}
	if st.Dropped != gaps {
		t.Errorf("Dropped: got %d, want %d", st.Dropped, gaps)
	}
	if n := len(st.Publishers); n > maxTracked {
		t.Errorf("publishers tracked: got %d, want at most %d", n, maxTracked)
	}
	if _, ok := st.Publishers[1000]; ok {
		t.Errorf("the first one-message publisher is still tracked after %d others", 3*maxTracked)
	}
	if got := st.Publishers[uint64(1000+3*maxTracked-1)]; got.Received != 1 {
		t.Errorf("latest publisher: got %+v, want Received 1", got)
	}
	if n := len(s.last) + len(s.lastOld); n > maxTracked {
		t.Errorf("sequences tracked: got %d, want at most %d", n, maxTracked)
	}
}
