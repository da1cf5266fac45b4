package survey_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/survey"
	"go.nanomsg.org/mangos/v3"
)

// TestEveryAnswerCounted: N respondents answer a survey whose queue holds
// fewer, nobody reading until it ends: every answer is delivered or
// counted, exactly (delivered + Dropped == N, Dropped the sum of its
// causes), whatever the scheduling.
func TestEveryAnswerCounted(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		const n, qlen = 12, 3
		s := mustSurveyor(t, survey.WithListen(addr), survey.WithQueueLen(qlen))
		respondents(t, addr, n)
		peers(t, s, n)
		rs, err := s.Survey(context.Background(), ping{N: 7}, survey.WithTimeout(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		// Every answer arrives and is accounted for before anything is read.
		testutil.Eventually(t, 30*time.Second, func() error {
			st := s.Stats()
			if got := st.Received + st.Dropped; got != n {
				return fmt.Errorf("received %d + dropped %d = %d, want %d", st.Received, st.Dropped, got, n)
			}
			return nil
		})
		got := collect(t, rs)
		st := s.Stats()
		if uint64(len(got)) != st.Received || len(got) > qlen {
			t.Fatalf("delivered %d, Received %d: want them equal, at most %d (the queue)", len(got), st.Received, qlen)
		}
		if uint64(len(got))+st.Dropped != n {
			t.Fatalf("delivered %d + dropped %d: want %d", len(got), st.Dropped, n)
		}
		if st.Dropped != st.DroppedQueueFull+st.DroppedLate || st.DecodeErrors != 0 {
			t.Fatalf("got %+v: want Dropped = DroppedQueueFull + DroppedLate, no decode errors", st.Stats)
		}
		t.Logf("%d answers: %d delivered, %d queue full, %d late", n, len(got), st.DroppedQueueFull, st.DroppedLate)
	})
}

// TestCompletedSurveyCountsStragglers: answers to a survey that ended when
// the expected respondents answered are counted late, not lost.
func TestCompletedSurveyCountsStragglers(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		const n = 6
		s := mustSurveyor(t, survey.WithListen(addr))
		names := respondents(t, addr, n)
		peers(t, s, n)
		rs, err := s.Survey(context.Background(), ping{N: 1}, survey.WithTimeout(time.Minute), survey.WithExpect(names[0]))
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		got := collect(t, rs) // ends once r0 answered
		testutil.Eventually(t, 30*time.Second, func() error {
			st := s.Stats()
			if st.Received != uint64(len(got)) || st.Received+st.DroppedLate != n || st.Dropped != st.DroppedLate {
				return fmt.Errorf("delivered %d, got %+v: want Received = delivered, Received + DroppedLate = %d", len(got), st.Stats, n)
			}
			return nil
		})
	})
}

// TestFramesWithoutSurveyIDCounted: frames that answer no survey of the
// surveyor (too short for an id, or an id it never issued) are counted in
// DecodeErrors; before spmesh's own SURVEYOR, mangos freed them uncounted.
func TestFramesWithoutSurveyIDCounted(t *testing.T) {
	addr := testutil.FreeTCP(t)
	garbageRespondent(t, mustSurveyor(t, survey.WithListen(addr)), addr, testutil.Garbage())
}

// garbageRespondent sends the surveyor s garbage from a raw SP RESPONDENT
// over TCP, answering no survey (no survey id, or one s never issued):
// each frame is discarded and counted in DecodeErrors, the connection is
// kept, and the next survey reaches that very peer.
func garbageRespondent(t *testing.T, s io.Closer, addr string, frames [][]byte) {
	if !strings.HasPrefix(addr, "tcp://") {
		t.Skip("the raw peer speaks SP over TCP")
	}
	sv := s.(*survey.Surveyor)
	raw := testutil.DialSP(t, addr, mangos.ProtoRespondent)
	peers(t, sv, 1)
	for i, f := range frames {
		if err := raw.Send(f); err != nil {
			t.Fatalf("hostile frame %d: %v", i, err)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		st := sv.Stats()
		if st.DecodeErrors != uint64(len(frames)) || st.Dropped != 0 || st.Received != 0 {
			return fmt.Errorf("after %d hostile frames: got %d decode errors, %d dropped, %d received; want %d, 0, 0",
				len(frames), st.DecodeErrors, st.Dropped, st.Received, len(frames))
		}
		return nil
	})
	rs, err := sv.Survey(context.Background(), ping{N: 1}, survey.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if b, err := raw.Recv(10 * time.Second); err != nil || len(b) <= 4 {
		t.Fatalf("raw respondent after its hostile frames: got % x, %v, want the question", b, err)
	}
	if st := sv.Stats(); st.Peers != 1 {
		t.Fatalf("Peers: got %d, want 1 (the connection is kept)", st.Peers)
	}
}
