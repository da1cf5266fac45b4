package survey_test

import (
	"context"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/survey"
)

// A stock NNG SURVEYOR (nngcat) asking an enveloped Respondent a raw
// question gets an answer: an error response saying the frame is not an
// spmesh envelope and pointing to WIRE.md, with code spmesh.CodeDecode,
// the respondent's name, and no call of the handler; the frame is counted
// in DecodeErrors.
func TestNNGCatRawSurveyorGetsError(t *testing.T) {
	path := testutil.NNGCat(t)
	addr := testutil.FreeTCP(t)
	r := mustRespondent(t, survey.HandlerFunc(func(ctx context.Context, q *survey.Question) (any, error) {
		t.Error("handler called for a raw question")
		return nil, nil
	}), survey.WithListen(addr), survey.WithName("victim"))
	out := <-testutil.StartNNGCat(t, path, 30*time.Second, "--surveyor", "--dial", addr, "--raw", "--data", "hello", "--count", "1", "--interval", "1")
	if out.Err != nil {
		t.Fatalf("nngcat --surveyor: %v (stderr %q)", out.Err, out.Stderr)
	}
	var env wire.Msg
	if err := wire.Decode([]byte(out.Stdout), &env); err != nil {
		t.Fatalf("answer % x: %v", out.Stdout, err)
	}
	// WIRE.md section 4's message for the raw body "hello".
	const want = "spmesh: decode error: envelope: not an spmesh envelope: first byte 0x68 'h', want version 0x01 (or, on pub/sub frames, a topic and 0x00 first); see WIRE.md"
	if env.Kind != wire.KindResponse || env.Code != spmesh.CodeDecode || env.From != "victim" || len(env.Body) != 0 {
		t.Errorf("got kind %d code %d from %q body %q, want kind %d code %d from victim, no body", env.Kind, env.Code, env.From, env.Body, wire.KindResponse, spmesh.CodeDecode)
	}
	if env.Err != want {
		t.Errorf("got error %q, want %q", env.Err, want)
	}
	if st := r.Stats(); st.DecodeErrors != 1 || st.Received != 0 || st.Sent != 1 || st.HandlerErrors != 0 {
		t.Errorf("got %+v, want 1 decode error answered, nothing received", st)
	}
}

// A bare Surveyor asking an enveloped Respondent (the two ends disagree)
// gets the Respondent's error envelope as opaque answer bytes, not
// silence.
func TestBareSurveyorToEnvelopedRespondent(t *testing.T) {
	addr := testutil.FreeTCP(t)
	r := mustRespondent(t, echo("victim"), survey.WithListen(addr), survey.WithName("victim"))
	s := mustSurveyor(t, survey.WithDial(addr), survey.WithBareFrames(), survey.WithCodec(spmesh.Raw), survey.WithTimeout(10*time.Second))
	ctx := bareCtx(t, 30*time.Second)
	if err := s.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Survey(ctx, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	a, err := rs.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var env wire.Msg
	if err := wire.Decode(a.Data, &env); err != nil || env.Kind != wire.KindResponse || env.Code != spmesh.CodeDecode || env.From != "victim" {
		t.Fatalf("got answer % x (%+v, %v), want the respondent's decode error envelope", a.Data, env, err)
	}
	if st := r.Stats(); st.DecodeErrors != 1 || st.Received != 0 {
		t.Fatalf("got %+v, want 1 decode error", st)
	}
}
