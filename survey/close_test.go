package survey_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/survey"
)

// TestResponsesCloseReleasesCollector: a survey without WithExpect closed
// by its caller releases its collector goroutine (and mangos context) at
// once, not at its deadline plus the late window; the contexts are then
// reused by the next surveys.
func TestResponsesCloseReleasesCollector(t *testing.T) {
	addr := testutil.FreeTCP(t)
	s := mustSurveyor(t, survey.WithListen(addr))
	respondents(t, addr, 1)
	peers(t, s, 1)
	ctx := context.Background()
	// Warm up: the respondent's and the surveyor's goroutines settle.
	rs, err := s.Survey(ctx, ping{N: 0}, survey.WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Next(ctx); err != nil {
		t.Fatal(err)
	}
	rs.Close()
	base := runtime.NumGoroutine()
	const n = 500
	for round := range 3 {
		for i := range n {
			rs, err := s.Survey(ctx, ping{N: i}, survey.WithTimeout(30*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if i%2 == 0 {
				if _, err := rs.Next(ctx); err != nil { // read one answer, then give up
					t.Fatal(err)
				}
			}
			rs.Close()
		}
		// Well before the 30 s deadline: the collectors are gone.
		testutil.Eventually(t, 5*time.Second, func() error {
			if g := runtime.NumGoroutine(); g > base+10 {
				return fmt.Errorf("round %d: %d goroutines after closing %d surveys, %d before", round, g, n, base)
			}
			return nil
		})
	}
}
