package sock_test

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/testutil"
	"go.nanomsg.org/mangos/v3"
)

// TestSurveyorCountsEveryAnswer: a raw RESPONDENT floods a survey whose
// queue holds 2 answers; every answer it sends is, exactly once, received
// or counted by cause: queue full, late (after the survey ended), or a
// decode error (no survey id, or one the surveyor never issued).
func TestSurveyorCountsEveryAnswer(t *testing.T) {
	addr := testutil.FreeTCP(t)
	so := open(t, sock.Surveyor, sock.Wiring{})
	if _, err := so.Listen(addr); err != nil {
		t.Fatal(err)
	}
	raw := testutil.DialSP(t, addr, mangos.ProtoRespondent)
	testutil.Eventually(t, 10*time.Second, peers(so, 1))

	sc, err := so.OpenSurvey()
	if err != nil {
		t.Fatal(err)
	}
	q := sock.NewFrame(5)
	q.Body = append(q.Body, "hello"...)
	if err := sc.Start(q, 2, time.Minute); err != nil {
		t.Fatal(err)
	}
	b, err := raw.Recv(10 * time.Second)
	if err != nil || len(b) != 4+5 || string(b[4:]) != "hello" {
		t.Fatalf("question: got % x, %v, want a survey id and hello", b, err)
	}
	id := binary.BigEndian.Uint32(b)
	if id&0x80000000 == 0 {
		t.Fatalf("survey id %08x: want the high bit set", id)
	}

	const n = 10
	for i := range n {
		if err := raw.Send([]byte{byte(i)}, id); err != nil {
			t.Fatal(err)
		}
	}
	want := func(st spmesh.Stats, full, late, decode uint64) error {
		if st.DroppedQueueFull != full || st.DroppedLate != late || st.DecodeErrors != decode || st.Dropped != full+late {
			return fmt.Errorf("got %d dropped (%d queue full, %d late), %d decode errors; want %d queue full, %d late, %d decode errors",
				st.Dropped, st.DroppedQueueFull, st.DroppedLate, st.DecodeErrors, full, late, decode)
		}
		return nil
	}
	testutil.Eventually(t, 10*time.Second, func() error { return want(so.Stats(), n-2, 0, 0) })
	for i := range 2 {
		f, err := sc.Recv(10 * time.Second)
		if err != nil || len(f.Body) != 1 || f.Body[0] != byte(i) {
			t.Fatalf("answer %d: got %v, %v", i, f, err)
		}
		f.Free()
	}
	if f, err := sc.Recv(time.Millisecond); !sock.IsRecvTimeout(err) {
		t.Fatalf("after the queued answers: got %v, %v, want a receive timeout", f, err)
	}

	// Two answers queued when the survey ends, one after: all late.
	for range 2 {
		if err := raw.Send([]byte{1}, id); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		// Both queued (the queue has room again) once their bytes count.
		if got := so.Stats().BytesReceived; got != n+2 {
			return fmt.Errorf("got %d bytes received, want %d", got, n+2)
		}
		return want(so.Stats(), n-2, 0, 0)
	})
	sc.End()
	testutil.Eventually(t, 10*time.Second, func() error { return want(so.Stats(), n-2, 2, 0) })
	if err := raw.Send([]byte{1}, id); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error { return want(so.Stats(), n-2, 3, 0) })
	if f, err := sc.Recv(time.Second); err == nil || sock.IsRecvTimeout(err) || sock.IsClosed(err) {
		t.Fatalf("after End: got %v, %v, want the survey's end", f, err)
	}

	// Not answers: too short for an id, an id never issued.
	if err := raw.Send([]byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := raw.Send([]byte{1}, id^0x40000000); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error { return want(so.Stats(), n-2, 3, 2) })
	if st := so.Stats(); st.Received != 0 || st.Peers != 1 {
		t.Fatalf("got %d received, %d peers; want 0 (the pattern counts those), 1", st.Received, st.Peers)
	}
}

// TestSurveyorCloseCountsQueued: answers still queued when the socket
// closes are counted as DroppedClosed, and Recv reports the close.
func TestSurveyorCloseCountsQueued(t *testing.T) {
	addr := testutil.FreeTCP(t)
	so := open(t, sock.Surveyor, sock.Wiring{})
	if _, err := so.Listen(addr); err != nil {
		t.Fatal(err)
	}
	raw := testutil.DialSP(t, addr, mangos.ProtoRespondent)
	testutil.Eventually(t, 10*time.Second, peers(so, 1))
	sc, err := so.OpenSurvey()
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Start(sock.NewFrame(1), 8, time.Minute); err != nil {
		t.Fatal(err)
	}
	b, err := raw.Recv(10 * time.Second)
	if err != nil || len(b) < 4 {
		t.Fatalf("question: got % x, %v", b, err)
	}
	id := binary.BigEndian.Uint32(b)
	for range 3 {
		if err := raw.Send([]byte{1}, id); err != nil {
			t.Fatal(err)
		}
	}
	// One taken proves the connection delivers; the two behind it are
	// queued (nothing counted while they are).
	f, err := sc.Recv(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f.Free()
	testutil.Eventually(t, 10*time.Second, func() error {
		// The two others are queued once BytesReceived counts them.
		if got := so.Stats().BytesReceived; got != 3 {
			return fmt.Errorf("got %d bytes received, want 3", got)
		}
		return nil
	})
	so.Close()
	if st := so.Stats(); st.DroppedClosed != 2 || st.Dropped != 2 {
		t.Fatalf("after close: got %d dropped, %d closed; want 2, 2", st.Dropped, st.DroppedClosed)
	}
	if f, err := sc.Recv(time.Second); !sock.IsClosed(err) {
		t.Fatalf("after close: got %v, %v, want closed", f, err)
	}
}
