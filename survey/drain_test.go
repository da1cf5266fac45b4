package survey_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/survey"
)

// heldSurvey starts a survey, expecting one respondent, "held", that
// answers once release closes.
func heldSurvey(t *testing.T) (*survey.Surveyor, *survey.Responses, chan struct{}) {
	t.Helper()
	addr := testutil.FreeTCP(t)
	s := mustSurveyor(t, survey.WithListen(addr))
	release := make(chan struct{})
	mustRespondent(t, survey.HandlerFunc(func(ctx context.Context, q *survey.Question) (any, error) {
		select {
		case <-release:
			return "held", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}), survey.WithDial(addr), survey.WithName("held"))
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	peers(t, s, 1)
	rs, err := s.Survey(context.Background(), "q", survey.WithTimeout(time.Minute), survey.WithExpect("held"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	return s, rs, release
}

func TestSurveyorDrainLetsSurveysEnd(t *testing.T) {
	s, rs, release := heldSurvey(t)
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		drained <- s.Drain(ctx)
	}()
	testutil.Eventually(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		rs2, err := s.Survey(ctx, "late")
		if err == nil {
			rs2.Close()
		}
		if !errors.Is(err, spmesh.ErrClosed) {
			return fmt.Errorf("Survey during Drain = %v, want ErrClosed", err)
		}
		return nil
	})
	select {
	case err := <-drained:
		t.Fatalf("Drain returned %v with a survey running", err)
	default:
	}
	close(release)
	if err := <-drained; err != nil {
		t.Fatalf("Drain = %v, want nil", err)
	}
	// The survey ended complete; its answer is still there after Drain.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := rs.Next(ctx)
	if err != nil {
		t.Fatalf("Next after Drain = %v, want the answer", err)
	}
	if r.From != "held" {
		t.Fatalf("answer from %q, want held", r.From)
	}
	if _, err := rs.Next(ctx); !errors.Is(err, survey.ErrDone) {
		t.Fatalf("Next at the end = %v, want ErrDone", err)
	}
	if _, err := s.Survey(ctx, "after"); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Survey after Drain = %v, want ErrClosed", err)
	}
	if err := s.Drain(ctx); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("second Drain = %v, want ErrClosed", err)
	}
}

func TestSurveyorDrainExpires(t *testing.T) {
	s, rs, _ := heldSurvey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain = %v, want DeadlineExceeded", err)
	}
	// Closed anyway: the running survey ends.
	next, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if _, err := rs.Next(next); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("Next after expired Drain = %v, want ErrClosed", err)
	}
}
