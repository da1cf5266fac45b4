package hostile

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/wire"
)

// Target is one spmesh socket under attack, as a pattern package's test
// describes it to [Run].
type Target struct {
	Name string
	// Connect opens one hostile connection: it dials a binder, or makes
	// the connector dial a hostile [Listener] and accepts.
	Connect func() (*Conn, error)
	// Kind and Topic are what the attacker's envelopes claim to be.
	Kind  wire.Kind
	Topic string
	// ReqHeader: the attacker's frames start with a 4-byte SP request or
	// survey id (a REQ or SURVEYOR attacker).
	ReqHeader bool
	// Answer: the attacker answers the frames it receives (a RESPONDENT
	// attacker): each attack frame goes out with the SP header of the
	// last frame received, so that it reaches the spmesh decoder.
	Answer bool
	// Legit is one call of a legit peer (a round trip), timed by Run.
	Legit func(ctx context.Context) error
	// Stats are the target's counters.
	Stats func() spmesh.Stats
	// Big, if set, is a body whose answer is large (256 KiB or more): the
	// never-reading attack sends it over and over and reads nothing.
	Big []byte
	// Bodies says the target decodes message bodies with typed handlers
	// (or its application does): the hostile msgpack bodies are sent.
	Bodies bool
	// MaxConns caps the idle-connection attack (a connector dials one
	// connection per listener).
	MaxConns int
}

// Attack is one way of abusing a target.
type Attack struct {
	Name  string
	Conns int
	// Frames are the frames sent over and over (each an envelope or
	// garbage: the SP header is added as the target needs), one every
	// Every; nil with Raw set: Raw writes what it likes.
	Frames [][]byte
	Every  time.Duration
	// Raw is a custom attack on one connection, until stop closes.
	Raw func(c *Conn, stop <-chan struct{}) error
	// Closes: the target is expected to close the connection (a claim
	// over the limit): reconnect and go on.
	Closes bool
	// For is how long the attack lasts at least (default AttackFor): the
	// legit peer keeps calling meanwhile.
	For time.Duration
}

// AttackFor is the default duration of an attack.
const AttackFor = 500 * time.Millisecond

// Figures are what one attack cost its target.
type Figures struct {
	Sent       int64 // bytes the attacker wrote (what the target received, at most)
	Frames     int64
	Growth     Growth // memory, measured while the attack's connections are still open
	Extra      int64  // bytes allocated beyond the legit traffic's own allocation
	During     *Latency
	Counters   spmesh.Stats // the target's counters moved by the attack
	AttackErrs int64
}

// HeldBound and AllocBound are the stated bounds of every attack: the
// target holds (and allocates beyond what the legit traffic does) at most
// 8 times the bytes it received, plus 8 KiB per frame (a message, its
// decoding and an error reply), plus 16 MiB for the runtime and the legit
// traffic's noise.
var (
	HeldBound  = Bound{Per: 8, Slack: 16 << 20}
	AllocBound = Bound{Per: 8, Slack: 16 << 20}
	PerFrame   = int64(8 << 10)
)

// LegitCalls is how many legit calls are timed with and without attack.
const LegitCalls = 200

// LegitTimeout bounds one legit call.
const LegitTimeout = 10 * time.Second

// StandardAttacks are the attacks every target gets: garbage frames,
// truncated envelopes, header map claims, hostile msgpack bodies (if the
// target decodes bodies), length claims up to 2^64-1, trickles, idle
// connections, and a peer that never reads (if the target has a Big
// answer).
func StandardAttacks(tg Target, maxMsg int) []Attack {
	valid := Envelope(tg.Kind, tg.Topic, []byte{0xa2, 'h', 'i'})
	var garbage [][]byte
	for _, g := range Garbage() {
		garbage = append(garbage, g)
		if tg.Topic != "" {
			garbage = append(garbage, append([]byte(tg.Topic+"\x00"), g...))
		}
	}
	as := []Attack{
		{Name: "garbage", Conns: 4, Frames: garbage, Every: time.Millisecond},
		{Name: "truncations", Conns: 4, Frames: Truncations(valid, 64), Every: time.Millisecond},
		{Name: "header-claims", Conns: 1, Frames: [][]byte{HeaderClaim(tg.Kind, tg.Topic, 1<<20)}, Every: 100 * time.Millisecond},
	}
	if tg.Bodies {
		var bs [][]byte
		for _, b := range Bodies() {
			bs = append(bs, Envelope(tg.Kind, tg.Topic, b.B))
		}
		bs = append(bs, Envelope(tg.Kind, tg.Topic, Nesting(maxMsg/2)))
		as = append(as, Attack{Name: "msgpack-bodies", Conns: 2, Frames: bs, Every: 2 * time.Millisecond})
	}
	if tg.Kind == wire.KindPublish {
		as = append(as, Attack{Name: "batch-claims", Conns: 2, Frames: [][]byte{BatchClaim(tg.Topic, 1<<19), BatchBinClaim(tg.Topic)}, Every: 50 * time.Millisecond})
	}
	claims := []uint64{uint64(maxMsg) - 1, uint64(maxMsg) + 1, 1 << 32, 1 << 63, 1<<64 - 1}
	as = append(as,
		Attack{Name: "length-claims", Conns: len(claims), Closes: true, Raw: func(c *Conn, stop <-chan struct{}) error {
			// Each connection claims one size and trickles; the ones
			// over the ceiling are closed at once.
			i := int(claimSeq.Add(1)) % len(claims)
			if err := c.Write(Claim(claims[i])); err != nil {
				return err
			}
			return c.Trickle(stop, make([]byte, 64), 20*time.Millisecond)
		}},
		Attack{Name: "idle-connections", Conns: min(200, max(tg.MaxConns, 1)), Raw: func(c *Conn, stop <-chan struct{}) error {
			<-stop
			return nil
		}},
	)
	if tg.Big != nil {
		as = append(as, Attack{Name: "never-reads", Conns: 1, Frames: [][]byte{Envelope(tg.Kind, tg.Topic, tg.Big)}, Every: 200 * time.Microsecond})
	}
	return as
}

var claimSeq atomic.Int64

// Run runs each attack against tg while a legit peer keeps calling it, and
// asserts: the process is alive (the test goes on), the target's heap held
// and allocated are within [HeldBound] and [AllocBound] of the bytes the
// attack sent, and every legit call is served. It logs each attack's
// figures, with the ratio of the legit p99 during the attack to the p99
// without (reported, not asserted).
func Run(t *testing.T, tg Target, attacks []Attack) {
	t.Helper()
	base, baseAlloc := measureLegit(t, tg)
	n, _, _ := base.Counts()
	t.Logf("%s: legit p99 without attack %v over %d calls (%.1f KiB allocated per call)",
		tg.Name, base.P99(), n, float64(baseAlloc)/1024)
	for _, a := range attacks {
		t.Run(a.Name, func(t *testing.T) {
			f := runAttack(t, tg, a, baseAlloc)
			ok, failed, last := f.During.Counts()
			t.Logf("%s/%s: sent %d B in %d frames; %v; beyond legit %.2f MiB; legit %d ok %d failed, p99 ratio %s; target %s",
				tg.Name, a.Name, f.Sent, f.Frames, f.Growth, float64(f.Extra)/(1<<20), ok, failed, Ratio(f.During, base), counters(f.Counters))
			if failed > 0 {
				t.Errorf("legit peer: %d of %d calls failed during the attack, last: %v", failed, ok+failed, last)
			}
			slack := f.Frames * PerFrame
			if err := (Bound{Per: HeldBound.Per, Slack: HeldBound.Slack + uint64(slack)}).Check("heap held", f.Growth.Held, f.Sent); err != nil {
				t.Error(err)
			}
			if err := (Bound{Per: AllocBound.Per, Slack: AllocBound.Slack + uint64(slack)}).Check("allocated beyond the legit traffic", f.Extra, f.Sent); err != nil {
				t.Error(err)
			}
		})
	}
}

func counters(s spmesh.Stats) string {
	return fmt.Sprintf("decode errors %d, dropped %d, too large %d, send timeouts %d, refused %d, conn timeouts %d, handshake errors %d",
		s.DecodeErrors, s.Dropped, s.TooLarge, s.SendTimeouts, s.ConnsRefused, s.ConnTimeouts, s.HandshakeErrors)
}

// measureLegit times the legit peer without attack; it returns the
// latencies and the bytes allocated per call.
func measureLegit(t *testing.T, tg Target) (*Latency, uint64) {
	// Warm up (connections, pools), then time.
	var warm Latency
	warm.Run(20, LegitTimeout, tg.Legit)
	if ok, failed, last := warm.Counts(); failed > 0 || ok == 0 {
		t.Fatalf("%s: legit peer not served before any attack: %v", tg.Name, last)
	}
	m := ReadMem()
	var l Latency
	l.RunFor(LegitCalls, AttackFor, LegitTimeout, tg.Legit)
	g := m.Since()
	ok, failed, last := l.Counts()
	if failed > 0 {
		t.Fatalf("%s: legit peer failed without attack: %v", tg.Name, last)
	}
	return &l, g.Allocated / uint64(ok)
}

func runAttack(t *testing.T, tg Target, a Attack, perCall uint64) Figures {
	before := tg.Stats()
	m := ReadMem()
	stop := make(chan struct{})
	var (
		wg      sync.WaitGroup
		sent    atomic.Int64
		frames  atomic.Int64
		errs    atomic.Int64
		mu      sync.Mutex
		opened  []*Conn
		firstEr error
	)
	connect := func() *Conn {
		c, err := tg.Connect()
		if err != nil {
			errs.Add(1)
			mu.Lock()
			if firstEr == nil {
				firstEr = err
			}
			mu.Unlock()
			return nil
		}
		mu.Lock()
		opened = append(opened, c)
		mu.Unlock()
		return c
	}
	for i := range a.Conns {
		c := connect()
		if c == nil {
			if i == 0 {
				t.Fatalf("%s/%s: cannot connect: %v", tg.Name, a.Name, firstEr)
			}
			continue
		}
		wg.Go(func() {
			for {
				var err error
				if a.Raw != nil {
					err = a.Raw(c, stop)
				} else {
					err = flood(c, tg, a, stop, &frames)
				}
				sent.Add(c.Sent())
				select {
				case <-stop:
					return
				default:
				}
				if err == nil && !a.Closes {
					return
				}
				// Closed by the target (as expected for some attacks):
				// come back.
				if c = connect(); c == nil {
					return
				}
			}
		})
	}
	var during Latency
	d := a.For
	if d == 0 {
		d = AttackFor
	}
	during.RunFor(LegitCalls, d, LegitTimeout, tg.Legit)
	// Held while the attack's connections are still open.
	g := m.Since()
	close(stop)
	wg.Wait()
	mu.Lock()
	for _, c := range opened {
		c.Reset()
	}
	mu.Unlock()
	after := tg.Stats()
	// The legit traffic's own allocation, at the rate measured without
	// attack, is not the attack's.
	calls, _, _ := during.Counts()
	extra := int64(g.Allocated) - int64(perCall)*int64(calls)
	return Figures{
		Sent: sent.Load(), Frames: frames.Load(), Growth: g, Extra: extra, During: &during,
		Counters: spmesh.Stats{
			DecodeErrors: after.DecodeErrors - before.DecodeErrors, Dropped: after.Dropped - before.Dropped,
			TooLarge: after.TooLarge - before.TooLarge, SendTimeouts: after.SendTimeouts - before.SendTimeouts,
			ConnsRefused: after.ConnsRefused - before.ConnsRefused, ConnTimeouts: after.ConnTimeouts - before.ConnTimeouts,
			HandshakeErrors: after.HandshakeErrors - before.HandshakeErrors,
		},
		AttackErrs: errs.Load(),
	}
}

// flood sends a's frames over and over on c, one every a.Every, until
// stop closes (nil) or a write fails.
func flood(c *Conn, tg Target, a Attack, stop <-chan struct{}, frames *atomic.Int64) error {
	tick := time.NewTicker(a.Every)
	defer tick.Stop()
	var hdr []byte
	var seq uint32
	var answers chan []byte
	if tg.Answer {
		answers = make(chan []byte, 1)
		go func() {
			// Read what the target sends; keep the last SP header.
			for {
				b, err := c.ReadFrame(time.Hour, 64<<20)
				if err != nil {
					close(answers)
					return
				}
				if len(b) >= 4 {
					select {
					case answers <- b[:4]:
					default:
					}
				}
			}
		}()
		defer c.Close() // ends the reader
	}
	for {
		for _, f := range a.Frames {
			select {
			case <-stop:
				return nil
			case <-tick.C:
			}
			var parts [][]byte
			switch {
			case tg.ReqHeader:
				seq++
				parts = append(parts, ReqID(seq))
			case tg.Answer:
				select {
				case h, ok := <-answers:
					if !ok {
						return errors.New("closed")
					}
					hdr = h
				default:
				}
				if hdr == nil {
					continue // nothing asked yet
				}
				parts = append(parts, hdr)
			}
			if err := c.Frame(append(parts, f)...); err != nil {
				return err
			}
			frames.Add(1)
		}
	}
}
