//go:build linux

package reqrep_test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/reqrep"
)

// startChild runs the test binary as a replier child that dies with us.
func startChild(t *testing.T) (c *testutil.Child, addr string) {
	t.Helper()
	c = testutil.StartLines(t, testutil.SelfCommand(childEnv+"=1"), nil)
	line := c.Next(t)
	addr, ok := strings.CutPrefix(line, "ADDR ")
	if !ok {
		t.Fatalf("child's first line: got %q, want ADDR <address>", line)
	}
	return c, addr
}

// TestReplierKilled kills (SIGKILL) a replier process while it holds a
// request: the request is resent on the loss of the connection and
// completes on another replier, with the same id and attempt 2.
func TestReplierKilled(t *testing.T) {
	child, addr := startChild(t)
	rq := mustRequester(t, reqrep.WithDial(addr))
	peers(t, rq, 1)

	type result struct {
		rep *reqrep.Reply
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := rq.Do(ctxT(t, 30*time.Second), &reqrep.Call{Body: resize{"cat.jpg", 64}})
		done <- result{rep, err}
	}()
	var id string
	var attempt int
	if _, err := fmt.Sscanf(child.Next(t), "HOLD %s %d", &id, &attempt); err != nil || attempt != 1 {
		t.Fatalf("child: got id %q attempt %d (%v), want a held first attempt", id, attempt, err)
	}

	// A second replier joins, then the first dies holding the request.
	rp := mustReplier(t, thumbnailer("survivor"), reqrep.WithListen("tcp://127.0.0.1:0"))
	if err := rq.Dial(rp.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	peers(t, rq, 2)
	if err := child.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	r := <-done
	if r.err != nil {
		t.Fatalf("request after its replier died: got %v, want a reply from the survivor", r.err)
	}
	var got thumb
	if err := r.rep.Decode(&got); err != nil || got.By != "survivor" {
		t.Fatalf("reply: got %+v, %v, want one by the survivor", got, err)
	}
	if r.rep.ID.String() != id || r.rep.Attempt != 2 || r.rep.Header.Get("attempt") != "2" {
		t.Fatalf("reply: got id %s attempt %d, want id %s attempt 2", r.rep.ID, r.rep.Attempt, id)
	}
	if st := rq.Stats(); st.Lost != 1 || st.Resent != 1 {
		t.Fatalf("stats: got %+v, want 1 lost, 1 resent", st)
	}
}
