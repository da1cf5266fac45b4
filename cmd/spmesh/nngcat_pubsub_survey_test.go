package main

import (
	"regexp"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
)

// The CLI's --bare on pub, sub, survey and respond against NNG's nngcat, as
// real processes over TCP (skipped when nngcat is not installed).

// spmesh pub --bare reaches nngcat --sub: the frame is the topic then the
// message, nothing else.
func TestBarePubToNNGCatSub(t *testing.T) {
	t.Parallel()
	path := nngcatPath(t)
	addr := testutil.FreeTCP(t)
	done := startNNGCat(t, path, "--sub", "--listen", addr, "--subscribe", "img.", "--raw", "--count", "1")
	mustRun(t, 0, "", "pub", "--dial", addr, "--bare", "--subscribers", "1", "--wait", "20s", "img.ready", "hello")
	select {
	case n := <-done:
		if n.Err != nil || n.Stdout != "img.readyhello" {
			t.Fatalf("nngcat --sub got %q (%v, stderr %q), want %q", n.Stdout, n.Err, n.Stderr, "img.readyhello")
		}
	case <-time.After(waitReady):
		t.Fatalf("nngcat --sub got nothing within %v", waitReady)
	}
}

// spmesh sub --bare prints nngcat --pub's frames whole, as they came.
func TestNNGCatPubToBareSub(t *testing.T) {
	t.Parallel()
	path := nngcatPath(t)
	addr := testutil.FreeTCP(t)
	sub := start(t, "sub", "--listen", addr, "--bare", "-v", "--count", "2", "img.", "img.ready")
	sub.waitLine(sub.stderr, `subscribed to img\. img\.ready`, waitReady)
	// nngcat sends once a second (whole seconds only).
	startNNGCat(t, path, "--pub", "--dial", addr, "--data", "img.readyhello", "--interval", "1")
	if code := sub.wait(waitReady); code != 0 {
		t.Fatalf("got sub exit %d, want 0 after --count 2\n%s", code, sub)
	}
	sub.waitLine(sub.stdout, `^img\.readyhello$`, time.Second)
	if got := sub.stdout.String(); got != "img.readyhello\nimg.readyhello" && got != "img.readyhello\nimg.readyhello\n" {
		t.Fatalf("got %q, want the frame twice\n%s", got, sub)
	}
}

// nngcat --surveyor gets the answer of spmesh respond --bare --command.
func TestNNGCatSurveyorToBareRespond(t *testing.T) {
	t.Parallel()
	path := nngcatPath(t)
	addr := testutil.FreeTCP(t)
	resp := start(t, "respond", "--listen", addr, "--bare", "-v", "--count", "1", "--command", "tr a-z A-Z")
	resp.waitLine(resp.stderr, `answering surveys of any surveyor`, waitReady)
	var n testutil.NNGCatRun
	select {
	case n = <-startNNGCat(t, path, "--surveyor", "--dial", addr, "--raw", "--data", "ping", "--count", "1", "--interval", "1"):
	case <-time.After(waitReady):
		t.Fatalf("nngcat --surveyor did not finish within %v\n%s", waitReady, resp)
	}
	if n.Err != nil || n.Stdout != "PING" {
		t.Fatalf("nngcat --surveyor got %q (%v, stderr %q), want %q\n%s", n.Stdout, n.Err, n.Stderr, "PING", resp)
	}
	resp.waitLine(resp.stdout, `^survey "?ping"?$`, waitReady)
	if code := resp.wait(waitReady); code != 0 {
		t.Fatalf("got respond exit %d, want 0 after --count 1\n%s", code, resp)
	}
}

// spmesh survey --bare prints nngcat --respondent's answer, from its
// connection's address.
func TestBareSurveyToNNGCatRespondent(t *testing.T) {
	t.Parallel()
	path := nngcatPath(t)
	addr := testutil.FreeTCP(t)
	done := startNNGCat(t, path, "--respondent", "--listen", addr, "--raw", "--data", "pong", "--count", "1")
	r := mustRun(t, 0, "", "survey", "--dial", addr, "--bare", "--respondents", "1", "--wait", "20s", "--timeout", "2s", "ping")
	if !regexp.MustCompile(`^(127\.0\.0\.1:\d+|tcp://127\.0\.0\.1:\d+) pong\n$`).MatchString(r.stdout) {
		t.Fatalf("got %q, want ADDRESS pong\n%s", r.stdout, r)
	}
	select {
	case n := <-done:
		if n.Err != nil || n.Stdout != "ping" {
			t.Fatalf("nngcat --respondent got %q (%v, stderr %q), want %q", n.Stdout, n.Err, n.Stderr, "ping")
		}
	case <-time.After(waitReady):
		t.Fatalf("nngcat --respondent still running %v after answering", waitReady)
	}
}
