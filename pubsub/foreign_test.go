package pubsub_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/foreign"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/pubsub"
)

// Subscribers that know only WIRE.md: internal/foreign (standard library
// only) over SP/TCP, and nngcat --sub. They subscribe to one exact topic
// by the SUB prefix WIRE.md gives (the topic's bytes and 0x00), parse what
// arrives by WIRE.md (publish, batch and tail frames) and find each
// message's topic, body, publisher id and sequence number as documented.

const fburst = 20000 // messages in the foreign tests' burst

// received is what a foreign subscriber made of the frames it got.
type received struct {
	lossy   bool // a subscriber that may drop frames: seqs may skip
	n       int  // messages received
	last    uint64
	end     bool
	kinds   map[byte]int
	skipped map[string]int // frames not passing the prefix, by topic
}

// take parses one frame that passed the subscription prefix of topic, by
// WIRE.md alone, and checks it against the publisher's id and the
// sequence numbers so far. It reports whether the frame carried the body
// "end".
func (r *received) take(t *testing.T, f []byte, topic string, pub uint64) bool {
	t.Helper()
	e, err := foreign.Parse(f)
	if err != nil {
		t.Fatalf("frame % x: %v", f[:min(len(f), 64)], err)
	}
	r.kinds[e.Kind]++
	if e.Topic != topic || e.Pub != pub {
		t.Fatalf("got kind %d on %q from publisher %x, want %q from %x", e.Kind, e.Topic, e.Pub, topic, pub)
	}
	msgs := []*foreign.Envelope{e}
	switch e.Kind {
	case foreign.KindPublish:
	case foreign.KindBatch:
		if msgs, err = foreign.Entries(e); err != nil {
			t.Fatalf("batch: %v", err)
		}
	case foreign.KindTail:
		// The topic's last seq: never ahead of the messages.
		if e.Seq == 0 || e.Seq > r.last {
			t.Fatalf("tail with seq %d after seq %d", e.Seq, r.last)
		}
		return false
	default:
		t.Fatalf("got kind %d, want 1, 9 or 10", e.Kind)
	}
	for _, m := range msgs {
		// Sequence numbers per publisher and topic: from 1, +1 each (a
		// lossy subscriber sees them grow, with gaps).
		if m.Seq != r.last+1 && (!r.lossy || m.Seq <= r.last) {
			t.Fatalf("got seq %d body %q after seq %d", m.Seq, m.Body, r.last)
		}
		// The publisher sent body i as seq i+1, then "end".
		want := "end"
		if m.Seq <= fburst {
			want = strconv.Itoa(int(m.Seq) - 1)
		}
		if string(m.Body) != want || m.Seq > fburst+1 {
			t.Fatalf("seq %d: got body %q, want %q", m.Seq, m.Body, want)
		}
		if m.ID == ([16]byte{}) || m.Time == 0 || m.Topic != topic || m.Pub != pub {
			t.Fatalf("message %d: id %x time %d topic %q pub %x, want an id, a time, %q, %x", m.Seq, m.ID, m.Time, m.Topic, m.Pub, topic, pub)
		}
		r.n++
		r.last = m.Seq
		r.end = want == "end"
	}
	return r.end
}

// check checks that a lossless subscriber got every message, some in
// batch frames.
func (r *received) check(t *testing.T) {
	t.Helper()
	t.Logf("%d of %d messages in %d publish, %d batch and %d tail frames; skipped by prefix %v",
		r.n, fburst+1, r.kinds[foreign.KindPublish], r.kinds[foreign.KindBatch], r.kinds[foreign.KindTail], r.skipped)
	if r.lossy {
		return
	}
	if r.n != fburst+1 {
		t.Fatalf("got %d messages, want %d", r.n, fburst+1)
	}
	if r.kinds[foreign.KindBatch] == 0 {
		t.Fatalf("got no batch frame for a fburst of %d, want some", fburst)
	}
}

// publishBurst publishes, in the background, fburst messages on topic,
// each body its index, with a message on each of others after every
// thousandth, then "end" on topic. The channel yields its error.
func publishBurst(ctx context.Context, p *pubsub.Publisher, topic string, others ...string) <-chan error {
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			for i := range fburst {
				if err := p.PublishBytes(ctx, topic, nil, []byte(strconv.Itoa(i))); err != nil {
					return err
				}
				if i%1000 == 999 {
					for _, o := range others {
						if err := p.PublishBytes(ctx, o, nil, []byte("not for you")); err != nil {
							return err
						}
					}
				}
			}
			return p.PublishBytes(ctx, topic, nil, []byte("end"))
		}()
	}()
	return done
}

// A foreign SUB over SP/TCP subscribed to "orders.new" 0x00: as a stock
// SUB (filtering itself; the publisher sends it every topic) and with the
// interest frame of WIRE.md (the publisher filters: nothing else
// arrives). "orders.newer" shares the topic's bytes but not the 0x00.
func TestForeignSubscriber(t *testing.T) {
	const topic = "orders.new"
	prefix := []byte(topic + "\x00")
	for _, interest := range []bool{false, true} {
		t.Run(fmt.Sprint("interest=", interest), func(t *testing.T) {
			addr := testutil.FreeTCP(t)
			// Lossless (WithBackpressure), so that every seq must arrive.
			p := mustPub(t, pubsub.WithListen(addr), pubsub.WithCodec(spmesh.Raw),
				pubsub.WithQueueLen(1<<16), pubsub.WithBackpressure(time.Minute))
			c, err := foreign.Dial(addr, foreign.Sub)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if interest {
				if err := c.Send(foreign.AppendInterest(nil, 0, topic+"\x00", "sync\x00")); err != nil {
					t.Fatal(err)
				}
			}
			r := &received{kinds: map[byte]int{}, skipped: map[string]int{}}
			recv := func() []byte {
				t.Helper()
				f, err := c.Recv(30 * time.Second)
				if err != nil {
					t.Fatalf("after seq %d: %v", r.last, err)
				}
				return f
			}
			// Rounds of "other" then "sync" until a round brings "sync"
			// alone: the connection is up and, with interest, the
			// publisher filters for it (from then on, for good).
			ctx := ctxT(t, time.Minute)
			if err := p.WaitPeers(ctx, 1); err != nil {
				t.Fatal(err)
			}
			for round := 0; ; round++ {
				if round == 1000 {
					t.Fatal("no round without other")
				}
				p.PublishBytes(ctx, "other", nil, []byte("x"))
				p.PublishBytes(ctx, "sync", nil, []byte(strconv.Itoa(round)))
				other := false
				for {
					f := recv()
					e, err := foreign.Parse(f)
					if err != nil {
						t.Fatalf("frame % x: %v", f, err)
					}
					if e.Topic == "other" {
						other = true
					}
					if e.Topic == "sync" && e.Kind == foreign.KindPublish && string(e.Body) == strconv.Itoa(round) {
						break
					}
				}
				if !interest || !other {
					break
				}
			}

			done := publishBurst(ctx, p, topic, "orders.newer", "orders.old")
			for {
				f := recv()
				if !bytes.HasPrefix(f, prefix) {
					e, err := foreign.Parse(f)
					if err != nil {
						t.Fatalf("frame % x: %v", f[:min(len(f), 64)], err)
					}
					if interest && e.Kind != foreign.KindTail {
						t.Fatalf("got kind %d on %q, want only %q (interest sent)", e.Kind, e.Topic, topic)
					}
					r.skipped[e.Topic]++
					continue
				}
				if r.take(t, f, topic, p.ID()) {
					break
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			r.check(t)
			if !interest && r.skipped["orders.newer"] == 0 {
				t.Fatalf("skipped %v, want orders.newer frames sent to a stock SUB and refused by its prefix", r.skipped)
			}
		})
	}
}

// nngcat --sub gets a Publisher's envelopes, printed in hex (one frame a
// line); it cannot subscribe to "orders.new" 0x00 (a command-line argument
// cannot hold a 0x00 byte), so it subscribes to "orders.new" and checks
// the 0x00 itself. A topic outside the prefix never arrives.
func TestNNGCatSubEnvelopes(t *testing.T) {
	path := testutil.NNGCat(t)
	const topic = "orders.new"
	addr := testutil.FreeTCP(t)
	p := mustPub(t, pubsub.WithListen(addr), pubsub.WithCodec(spmesh.Raw), pubsub.WithQueueLen(1<<16), pubsub.WithBackpressure(time.Minute))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "--sub", "--dial", addr, "--subscribe", topic, "--hex")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		cmd.Wait()
	}()
	// nngcat subscribes before it dials.
	if err := p.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	done := publishBurst(ctx, p, topic, "other")
	// NNG's SUB drops frames when its receive queue (128 frames) is full:
	// nngcat may miss some, so seqs may skip, never go back.
	r := &received{lossy: true, kinds: map[byte]int{}, skipped: map[string]int{}}
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 1<<22)
	for {
		if !sc.Scan() {
			t.Fatalf("nngcat ended after seq %d: %v (stderr %q)", r.last, sc.Err(), stderr.Bytes())
		}
		f := unhex(t, sc.Text())
		if !bytes.HasPrefix(f, []byte(topic+"\x00")) {
			t.Fatalf("nngcat got % x, want only %q 0x00 frames", f[:min(len(f), 64)], topic)
		}
		if r.take(t, f, topic, p.ID()) {
			break
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.check(t)
}

// unhex decodes a line of nngcat --hex: "\x6f\x72...".
func unhex(t *testing.T, line string) []byte {
	t.Helper()
	s := strings.TrimSuffix(strings.TrimPrefix(line, `"`), `"`)
	b, err := hex.DecodeString(strings.ReplaceAll(s, `\x`, ""))
	if err != nil || len(s) != 4*len(b) {
		t.Fatalf("nngcat line %.80q: not \\xNN bytes (%v)", line, err)
	}
	return b
}

// A publisher written from WIRE.md alone (internal/foreign over SP/TCP)
// feeds an ordinary Subscriber of "orders.new": it first reads the
// Subscriber's interest frame (kind 11, the prefix "orders.new" 0x00),
// then sends the least publish WIRE.md allows, a full publish, a batch of
// three (ids and seqs per entry as documented, headers per entry only), a
// tail, and a frame on "orders.newer", which the exact subscription must
// not deliver. The Subscriber delivers exactly what the frames say.
func TestForeignPublisher(t *testing.T) {
	const topic = "orders.new"
	addr := testutil.FreeTCP(t)
	s := mustSub(t, pubsub.WithListen(addr), pubsub.WithCodec(spmesh.Raw), pubsub.WithSubscribe(topic))
	c, err := foreign.Dial(addr, foreign.Pub)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f, err := c.Recv(10 * time.Second)
	if err != nil {
		t.Fatalf("no interest frame: %v", err)
	}
	in, err := foreign.Parse(f)
	if err != nil {
		t.Fatalf("interest % x: %v", f, err)
	}
	ps, err := foreign.Prefixes(in)
	if err != nil || len(ps) != 1 || ps[0] != topic+"\x00" {
		t.Fatalf("got interest %q, %v, want the one prefix %q", ps, err, topic+"\x00")
	}

	var id [16]byte
	for i := range id {
		id[i] = byte(0xf0 + i)
	}
	id[15] = 0xff // entry 1 carries into byte 14
	now := time.Now().UnixNano()
	send := func(b []byte) {
		t.Helper()
		if err := c.Send(b); err != nil {
			t.Fatal(err)
		}
	}
	send((&foreign.Envelope{Topic: topic, Kind: foreign.KindPublish, Body: []byte("m")}).Append(nil))
	send((&foreign.Envelope{Topic: topic + "er", Kind: foreign.KindPublish, Pub: 7, Seq: 1, Body: []byte("not for you")}).Append(nil))
	send((&foreign.Envelope{Topic: topic, Kind: foreign.KindPublish, ID: id, Time: now, Pub: 7, Seq: 1,
		Headers: map[string]string{"k": "v"}, Body: []byte("a")}).Append(nil))
	batch := (&foreign.Envelope{Topic: topic, Kind: foreign.KindBatch, ID: id, Time: now, Pub: 7, Seq: 2,
		Headers: map[string]string{"not": "inherited"}}).Append(nil)
	batch = foreign.AppendEntry(batch, nil, []byte("b"))
	batch = foreign.AppendEntry(batch, map[string]string{"k": "c"}, []byte("c"))
	batch = foreign.AppendEntry(batch, nil, []byte("d"))
	send(batch)
	send((&foreign.Envelope{Topic: topic, Kind: foreign.KindTail, Time: now, Pub: 7, Seq: 4}).Append(nil))
	send((&foreign.Envelope{Topic: topic, Kind: foreign.KindPublish, Time: now, Pub: 7, Seq: 5, Body: []byte("e")}).Append(nil))

	plus := func(n uint64) spmesh.ID {
		out := id
		v := uint64(0)
		for _, b := range id[8:] {
			v = v<<8 | uint64(b)
		}
		v += n
		for i := 15; i >= 8; i-- {
			out[i], v = byte(v), v>>8
		}
		return out
	}
	want := []struct {
		body, hdr string
		id        spmesh.ID
		pub, seq  uint64
	}{
		{"m", "", spmesh.ID{}, 0, 0},
		{"a", "v", plus(0), 7, 1},
		{"b", "", plus(0), 7, 2},
		{"c", "c", plus(1), 7, 3},
		{"d", "", plus(2), 7, 4},
		{"e", "", spmesh.ID{}, 7, 5},
	}
	ctx := ctxT(t, 30*time.Second)
	for i, w := range want {
		m, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.Topic != topic || string(m.Data) != w.body || m.Header["k"] != w.hdr || m.Header["not"] != "" || m.ID != w.id || m.Publisher != w.pub || m.Seq != w.seq {
			t.Fatalf("message %d: got topic %q body %q headers %v id %x pub %d seq %d, want %q %q k=%q %x %d %d",
				i, m.Topic, m.Data, m.Header, m.ID, m.Publisher, m.Seq, topic, w.body, w.hdr, w.id, w.pub, w.seq)
		}
	}
	if st := s.Stats(); st.DecodeErrors != 0 || st.Dropped != 0 {
		t.Fatalf("got %+v, want no decode errors or drops", st.Stats)
	}
}

// A publisher's batch frames stay within what its subscribers accept
// (WIRE.md, interest key 14): under 8 KiB for a subscriber that announced
// no limit (a stock SUB, or an interest frame without the key), within
// the limit one announced, and past 8 KiB when every subscriber takes it.
// 4 KiB messages travel one per frame under the 8 KiB bound, and share
// batch frames when every subscriber takes 64 KiB.
func TestForeignSubscriberBatchFrames(t *testing.T) {
	const (
		topic = "frames"
		n     = 50000
	)
	for _, tc := range []struct {
		name     string
		interest bool
		limit    uint64 // key 14
		max      int    // the largest frame allowed
		big      bool   // some frame must be over 8 KiB (else over 4 KiB)
		size     int    // bodies (0: 256 B)
	}{
		{"stock", false, 0, pubsub.LegacyBatchFrame, false, 0},
		{"no limit said", true, 0, pubsub.LegacyBatchFrame, false, 0},
		{"limit 12 KiB", true, 12 << 10, 12 << 10, true, 0},
		{"limit 1 KiB counts as 8 KiB", true, 1 << 10, pubsub.LegacyBatchFrame, false, 0},
		{"limit 8 MiB", true, 8 << 20, pubsub.MaxBatchFrame, true, 0},
		{"4 KiB bodies, stock", false, 0, pubsub.LegacyBatchFrame, false, 4 << 10},
		{"4 KiB bodies, limit 8 MiB", true, 8 << 20, pubsub.MaxBatchFrame, true, 4 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := testutil.FreeTCP(t)
			p := mustPub(t, pubsub.WithListen(addr), pubsub.WithCodec(spmesh.Raw), pubsub.WithBackpressure(time.Minute))
			c, err := foreign.Dial(addr, foreign.Sub)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.interest {
				if err := c.Send(foreign.AppendInterest(nil, tc.limit, topic+"\x00")); err != nil {
					t.Fatal(err)
				}
			}
			ctx := ctxT(t, time.Minute)
			if err := p.WaitPeers(ctx, 1); err != nil {
				t.Fatal(err)
			}
			n := n
			if tc.size > 0 {
				n = 5000
			}
			done := make(chan error, 1)
			go func() {
				body := make([]byte, max(tc.size, 256))
				for range n {
					if err := p.PublishBytes(ctx, topic, nil, body); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			got, largest, frames := 0, 0, 0
			for got < n {
				f, err := c.Recv(30 * time.Second)
				if err != nil {
					t.Fatalf("after %d messages: %v", got, err)
				}
				e, err := foreign.Parse(f)
				if err != nil {
					t.Fatalf("frame % x: %v", f[:min(len(f), 64)], err)
				}
				switch e.Kind {
				case foreign.KindPublish:
					got++
				case foreign.KindBatch:
					es, err := foreign.Entries(e)
					if err != nil {
						t.Fatalf("batch: %v", err)
					}
					got += len(es)
				default:
					continue
				}
				frames++
				if len(f) > tc.max {
					t.Fatalf("got a frame of %d bytes, want at most %d", len(f), tc.max)
				}
				largest = max(largest, len(f))
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			t.Logf("%d messages in %d frames, the largest %d bytes", got, frames, largest)
			if tc.big && largest <= pubsub.LegacyBatchFrame {
				t.Fatalf("got frames of at most %d bytes, want some over %d (the subscriber takes %d)", largest, pubsub.LegacyBatchFrame, tc.limit)
			}
			if !tc.big && largest <= 4<<10 {
				t.Fatalf("got frames of at most %d bytes, want some over 4 KiB (batch frames up to 8 KiB - 1 whatever key 14 says)", largest)
			}
			if tc.size > 0 && !tc.big && frames != got {
				t.Fatalf("got %d messages of %d B in %d frames, want one frame each under the 8 KiB bound", got, tc.size, frames)
			}
		})
	}
}
