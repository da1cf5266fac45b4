package sock_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/testutil"
	"go.nanomsg.org/mangos/v3"
)

// subQueueBytes is the QueueBytes of the subscribers below, subFrame the
// size of each frame published to them.
const (
	subQueueBytes = 16 << 10
	subFrame      = 1 << 10
)

// stalledSub opens a publisher and a subscriber of p (Sub or SubHold) with
// QueueBytes subQueueBytes whose receive queue nobody reads, connected.
func stalledSub(t *testing.T, p sock.Proto) (pub, sub *sock.Socket) {
	t.Helper()
	pub = open(t, sock.Pub, sock.Wiring{})
	sub = open(t, p, sock.Wiring{}, sock.WithQueueBytes(subQueueBytes))
	if err := sub.Subscribe([]byte("t")); err != nil {
		t.Fatal(err)
	}
	addr, err := pub.Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Dial(addr); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, peers(pub, 1))
	return pub, sub
}

// publish sends n frames of subFrame bytes, numbered from *seq.
func publish(t *testing.T, pub *sock.Socket, seq *int, n int) {
	t.Helper()
	for range n {
		b := make([]byte, subFrame)
		b[0] = 't'
		copy(b[1:], fmt.Sprintf("%08d", *seq))
		*seq++
		if err := sock.Mangos(pub).Send(b); err != nil {
			t.Fatal(err)
		}
	}
}

// checkQueued fails if sub's receive queue holds more than its QueueBytes
// and one frame.
func checkQueued(t *testing.T, sub *sock.Socket) int64 {
	t.Helper()
	q := sock.SubQueued(sub)
	if q > subQueueBytes+subFrame {
		t.Fatalf("receive queue holds %d bytes, want at most %d (QueueBytes + one frame)", q, subQueueBytes+subFrame)
	}
	return q
}

// recv reads a frame from so's mangos socket, waiting 5 s at most (the
// reading goroutine ends when so closes).
func recv(so *sock.Socket) ([]byte, error) {
	ch := make(chan []byte, 1)
	go func() {
		b, _ := sock.Mangos(so).Recv()
		ch <- b
	}()
	select {
	case b := <-ch:
		if b == nil {
			return nil, mangos.ErrClosed
		}
		return b, nil
	case <-time.After(5 * time.Second):
		return nil, fmt.Errorf("no frame in 5 s")
	}
}

// TestSubQueueBytesDrops: a lossy subscriber whose application does not
// read holds at most QueueBytes (+ one frame) of frames, not RecvQueue
// frames, and counts the frames it drops to stay there; what it holds is
// the newest.
func TestSubQueueBytesDrops(t *testing.T) {
	pub, sub := stalledSub(t, sock.Sub)
	seq := 0
	want := uint64(4 * sock.DefaultQueue) // far more bytes than the bound, more frames than RecvQueue
	testutil.Eventually(t, 10*time.Second, func() error {
		publish(t, pub, &seq, 64)
		checkQueued(t, sub)
		if d := sock.SubDrops(sub); d < want {
			return fmt.Errorf("got %d frames dropped, want at least %d", d, want)
		}
		return nil
	})
	// The socket's counters leave them to the subscriber: an enveloped
	// one sees them as gaps, a bare one counts SubDrops.
	if st := sub.Stats(); st.Dropped != 0 || st.DroppedQueueFull != 0 {
		t.Fatalf("got Dropped %d, DroppedQueueFull %d, want 0 (counted by the pattern)", st.Dropped, st.DroppedQueueFull)
	}
	q := checkQueued(t, sub)
	if q < subQueueBytes/2 {
		t.Fatalf("receive queue holds %d bytes, want about %d (it is full)", q, subQueueBytes)
	}
	// What is queued is at most QueueBytes of frames, in order.
	last := -1
	for range subQueueBytes / subFrame / 2 {
		b, err := recv(sub)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if _, err := fmt.Sscanf(string(b[1:9]), "%08d", &n); err != nil || len(b) != subFrame || n <= last {
			t.Fatalf("got frame %q... (%d bytes) after %d, want a later frame of %d bytes", b[:9], len(b), last, subFrame)
		}
		last = n
	}
}

// TestSubHoldQueueBytes: a holding (lossless) subscriber whose application
// does not read stops reading its connection once QueueBytes are queued,
// drops nothing, and reads again once the application does.
func TestSubHoldQueueBytes(t *testing.T) {
	pub, sub := stalledSub(t, sock.SubHold)
	seq := 0
	testutil.Eventually(t, 10*time.Second, func() error {
		publish(t, pub, &seq, 16)
		if q := checkQueued(t, sub); q < subQueueBytes-subFrame {
			return fmt.Errorf("receive queue holds %d bytes, want about %d", q, subQueueBytes)
		}
		return nil
	})
	for range 64 { // the queue is full: the connection is not read
		publish(t, pub, &seq, 16)
		checkQueued(t, sub)
	}
	if d := sock.SubDrops(sub); d != 0 {
		t.Fatalf("a holding subscriber dropped %d frames, want 0", d)
	}
	// The application reads: more than the queue held gets through.
	got := 0
	testutil.Eventually(t, 10*time.Second, func() error {
		publish(t, pub, &seq, 4)
		for range 4 {
			b, err := recv(sub)
			if err != nil {
				return err
			}
			if !bytes.HasPrefix(b, []byte("t")) {
				return fmt.Errorf("got frame %q, want one of topic t", b[:min(len(b), 9)])
			}
			got++
			checkQueued(t, sub)
		}
		if got < 4*subQueueBytes/subFrame {
			return fmt.Errorf("read %d frames, want more than %d", got, 4*subQueueBytes/subFrame)
		}
		return nil
	})
}
