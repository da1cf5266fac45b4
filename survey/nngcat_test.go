package survey_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/survey"
)

// Interop with NNG's own nngcat over TCP, in bare mode (skipped when
// nngcat is not installed).

// nngcat --surveyor gets a bare Respondent's answer.
func TestNNGCatSurveyorToBareRespondent(t *testing.T) {
	path := testutil.NNGCat(t)
	addr := testutil.FreeTCP(t)
	r := mustRespondent(t, survey.HandlerFunc(func(ctx context.Context, q *survey.Question) (any, error) {
		return bytes.ToUpper(q.Data), nil
	}), survey.WithListen(addr), survey.WithBareFrames(), survey.WithCodec(spmesh.Raw))
	// nngcat dials before it sends, and collects answers for its survey
	// time (1s) after each survey.
	out := <-testutil.StartNNGCat(t, path, 30*time.Second, "--surveyor", "--dial", addr, "--raw", "--data", "ping", "--count", "1", "--interval", "1")
	if out.Err != nil || out.Stdout != "PING" {
		t.Fatalf("nngcat --surveyor got %q (%v, stderr %q), want %q", out.Stdout, out.Err, out.Stderr, "PING")
	}
	if st := r.Stats(); st.Received != 1 || st.Sent != 1 || st.DecodeErrors != 0 {
		t.Fatalf("got %+v, want 1 received and 1 sent", st)
	}
}

// A bare Surveyor gets nngcat --respondent's answer; nngcat gets the
// question's bytes.
func TestBareSurveyorToNNGCatRespondent(t *testing.T) {
	path := testutil.NNGCat(t)
	addr := testutil.FreeTCP(t)
	s := mustSurveyor(t, survey.WithListen(addr), survey.WithBareFrames(), survey.WithCodec(spmesh.Raw), survey.WithTimeout(5*time.Second))
	done := testutil.StartNNGCat(t, path, 30*time.Second, "--respondent", "--dial", addr, "--raw", "--data", "pong", "--count", "1")
	ctx := bareCtx(t, 30*time.Second)
	if err := s.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Survey(ctx, []byte("ping"))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	r, err := rs.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Data) != "pong" || r.Err != nil || r.Declined || r.From == "" {
		t.Fatalf("got %+v, want pong from nngcat's address", r)
	}
	if out := <-done; out.Err != nil || out.Stdout != "ping" {
		t.Fatalf("nngcat --respondent got %q (%v, stderr %q), want %q", out.Stdout, out.Err, out.Stderr, "ping")
	}
}
