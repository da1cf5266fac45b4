package survey_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/survey"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

type ping struct {
	N int
}

type pong struct {
	N    int
	From string
}

func mustSurveyor(t *testing.T, opts ...survey.Option) *survey.Surveyor {
	t.Helper()
	s, err := survey.NewSurveyor(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustRespondent(t *testing.T, h survey.Handler, opts ...survey.Option) *survey.Respondent {
	t.Helper()
	r, err := survey.NewRespondent(h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// echo answers a ping with its number and the respondent's name.
func echo(name string) survey.HandlerFunc {
	return func(ctx context.Context, q *survey.Question) (any, error) {
		p, err := spmesh.Decode[ping](q)
		if err != nil {
			return nil, err
		}
		return pong{N: p.N, From: name}, nil
	}
}

// peers waits until s has n respondents connected.
func peers(t *testing.T, s *survey.Surveyor, n int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := s.Stats().Peers; got != n {
			return fmt.Errorf("got %d peers, want %d", got, n)
		}
		return nil
	})
}

func transports(t *testing.T, f func(t *testing.T, addr string)) {
	t.Run("inproc", func(t *testing.T) { f(t, testutil.Inproc(t)) })
	t.Run("tcp", func(t *testing.T) { f(t, testutil.FreeTCP(t)) })
}

// respondents starts n echo respondents named r0..r(n-1) dialing addr.
func respondents(t *testing.T, addr string, n int) []string {
	t.Helper()
	var names []string
	for i := range n {
		name := fmt.Sprintf("r%d", i)
		mustRespondent(t, echo(name), survey.WithDial(addr), survey.WithName(name))
		names = append(names, name)
	}
	return names
}

func collect(t *testing.T, rs *survey.Responses) []*survey.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []*survey.Response
	for r, err := range rs.All(ctx) {
		if err != nil {
			t.Fatalf("responses: got %v, want the survey to end", err)
		}
		out = append(out, r)
	}
	return out
}

func TestAllAnswer(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		s := mustSurveyor(t, survey.WithListen(addr))
		names := respondents(t, addr, 5)
		peers(t, s, 5)
		ctx := context.Background()
		rs, err := s.Survey(ctx, ping{N: 7}, survey.WithTimeout(time.Minute), survey.WithExpect(names...))
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		got := collect(t, rs)
		var from []string
		for _, r := range got {
			p, err := spmesh.Decode[pong](r)
			if err != nil {
				t.Fatal(err)
			}
			if p.N != 7 || p.From != r.From || r.Declined || r.Err != nil {
				t.Fatalf("got %+v from %q, want pong 7 from the sender", p, r.From)
			}
			from = append(from, r.From)
		}
		slices.Sort(from)
		if !slices.Equal(from, names) {
			t.Fatalf("got answers from %v, want %v", from, names)
		}
		if m := rs.Missing(); len(m) != 0 {
			t.Fatalf("got missing %v, want none", m)
		}
		if _, err := rs.Next(ctx); !errors.Is(err, survey.ErrDone) || errors.Is(err, spmesh.ErrTimeout) {
			t.Fatalf("after the end: got %v, want ErrDone (not a timeout)", err)
		}
		st := s.Stats()
		if st.Sent != 1 || st.Received != 5 || st.Dropped != 0 || st.DecodeErrors != 0 {
			t.Fatalf("got stats %+v, want 1 sent, 5 received, nothing dropped", st)
		}
	})
}

// TestEarlyFinish: with every expected respondent answered, a survey with
// a one-minute deadline ends at once; the test finishing is the assertion.
// The expected set comes through WithExpectFunc, discovery's seam.
func TestEarlyFinish(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		var calls int
		var mu sync.Mutex
		s := mustSurveyor(t, survey.WithListen(addr), survey.WithTimeout(time.Minute),
			survey.WithExpectFunc(func() []string {
				mu.Lock()
				calls++
				mu.Unlock()
				return []string{"r0", "r1", "r2"}
			}))
		respondents(t, addr, 3)
		peers(t, s, 3)
		for i := range 3 {
			rs, err := s.Survey(context.Background(), ping{N: i})
			if err != nil {
				t.Fatal(err)
			}
			if got := collect(t, rs); len(got) != 3 {
				t.Fatalf("survey %d: got %d answers, want 3", i, len(got))
			}
			if time.Until(rs.Deadline()) < 30*time.Second {
				t.Fatalf("got deadline in %v, want about a minute", time.Until(rs.Deadline()))
			}
			rs.Close()
		}
		mu.Lock()
		defer mu.Unlock()
		if calls != 3 {
			t.Fatalf("got %d expect func calls, want 3", calls)
		}
	})
}

// TestSlowRespondent: one respondent answers after the deadline: it is
// reported missing, and its late answers are counted, never delivered to
// their survey nor to the later ones.
func TestSlowRespondent(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		s := mustSurveyor(t, survey.WithListen(addr))
		respondents(t, addr, 2)
		release := make(chan struct{})
		mustRespondent(t, survey.HandlerFunc(func(ctx context.Context, q *survey.Question) (any, error) {
			<-release
			p, err := spmesh.Decode[ping](q)
			return pong{N: p.N, From: "slow"}, err
		}), survey.WithDial(addr), survey.WithName("slow"))
		t.Cleanup(func() {
			select {
			case <-release:
			default:
				close(release)
			}
		})
		peers(t, s, 3)
		ask := func(n int, timeout time.Duration, expect ...string) *survey.Responses {
			t.Helper()
			rs, err := s.Survey(context.Background(), ping{N: n}, survey.WithTimeout(timeout), survey.WithExpect(expect...))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rs.Close() })
			return rs
		}
		check := func(rs *survey.Responses, n, want int) {
			t.Helper()
			got := collect(t, rs)
			if len(got) != want {
				t.Fatalf("survey %d: got %d answers, want %d", n, len(got), want)
			}
			for _, r := range got {
				if p, err := spmesh.Decode[pong](r); err != nil || p.N != n {
					t.Fatalf("survey %d: got %+v, %v from %s, want pong %d", n, p, err, r.From, n)
				}
			}
		}

		rs := ask(1, time.Second, "r0", "r1", "slow")
		check(rs, 1, 2)
		if m := rs.Missing(); !slices.Equal(m, []string{"slow"}) {
			t.Fatalf("got missing %v, want [slow]", m)
		}
		if _, err := rs.Next(context.Background()); !errors.Is(err, survey.ErrDone) || !errors.Is(err, spmesh.ErrTimeout) {
			t.Fatalf("got %v, want ErrDone and ErrTimeout", err)
		}
		// A second survey, done when the fast two answered, runs while the
		// slow answer to the first is pending.
		check(ask(2, time.Minute, "r0", "r1"), 2, 2)
		close(release)
		// The slow answers to both surveys come after their end (the
		// deadline, the expected two answering): both counted late.
		testutil.Eventually(t, 10*time.Second, func() error {
			if st := s.Stats(); st.DroppedLate != 2 || st.Dropped != 2 || st.Received != 4 {
				return fmt.Errorf("got %+v, want 2 late (dropped), 4 received", st)
			}
			return nil
		})
		if r, err := rs.Next(context.Background()); r != nil || !errors.Is(err, survey.ErrDone) {
			t.Fatalf("after the late answer: got %v, %v, want nothing more", r, err)
		}
		// A third survey, perhaps on the second's mangos context, gets
		// only its own answers.
		check(ask(3, time.Minute, "r0", "r1", "slow"), 3, 3)
	})
}

// TestConcurrentSurveys: surveys running at once each get only their own
// answers.
func TestConcurrentSurveys(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		s := mustSurveyor(t, survey.WithListen(addr))
		names := respondents(t, addr, 5)
		peers(t, s, 5)
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := range 40 {
			wg.Go(func() {
				rs, err := s.Survey(context.Background(), ping{N: i}, survey.WithTimeout(time.Minute), survey.WithExpect(names...))
				if err != nil {
					errs <- err
					return
				}
				defer rs.Close()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				n := 0
				for r, err := range rs.All(ctx) {
					if err != nil {
						errs <- err
						return
					}
					p, err := spmesh.Decode[pong](r)
					if err != nil || p.N != i {
						errs <- fmt.Errorf("survey %d: got %+v, %v, want pong %d", i, p, err, i)
						return
					}
					n++
				}
				if n != len(names) {
					errs <- fmt.Errorf("survey %d: got %d answers, want %d", i, n, len(names))
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if st := s.Stats(); st.Received != 200 || st.Dropped != 0 {
			t.Fatalf("got %+v, want 200 received, none dropped", st)
		}
	})
}

// TestHandlerFailures: errors, panics and declines come back as such, and
// the respondent keeps serving.
func TestHandlerFailures(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		s := mustSurveyor(t, survey.WithListen(addr))
		r := mustRespondent(t, survey.HandlerFunc(func(ctx context.Context, q *survey.Question) (any, error) {
			var cmd string
			if err := q.Decode(&cmd); err != nil {
				return nil, err
			}
			switch cmd {
			case "panic":
				panic("boom")
			case "fail":
				return nil, spmesh.Errorf(42, "no disk")
			case "decline":
				return nil, fmt.Errorf("busy: %w", survey.ErrDeclined)
			}
			q.SetReplyHeader("trace", q.Header.Get("trace"))
			return "ok " + cmd, nil
		}), survey.WithDial(addr), survey.WithName("solo"))
		peers(t, s, 1)
		ask := func(cmd string) *survey.Response {
			t.Helper()
			rs, err := s.SurveyHeader(context.Background(), spmesh.Header{"trace": cmd}, cmd, survey.WithTimeout(time.Minute),
				survey.WithExpect("solo"))
			if err != nil {
				t.Fatal(err)
			}
			defer rs.Close()
			got := collect(t, rs)
			if len(got) != 1 || got[0].From != "solo" {
				t.Fatalf("%s: got %d answers, want 1 from solo", cmd, len(got))
			}
			return got[0]
		}
		var re *spmesh.RemoteError
		if resp := ask("panic"); !errors.As(resp.Err, &re) || re.Code != spmesh.CodePanic {
			t.Fatalf("panic: got %v, want a remote error with CodePanic", resp.Err)
		}
		if resp := ask("fail"); !errors.As(resp.Decode(new(string)), &re) || re.Code != 42 || re.Message != "no disk" {
			t.Fatalf("fail: got %v, want remote error 42 no disk", resp.Err)
		}
		resp := ask("decline")
		if !resp.Declined || resp.Err != nil || !errors.Is(resp.Decode(new(string)), survey.ErrDeclined) {
			t.Fatalf("decline: got %+v, want declined", resp)
		}
		resp = ask("hello")
		if v, err := spmesh.Decode[string](resp); err != nil || v != "ok hello" || resp.Header.Get("trace") != "hello" {
			t.Fatalf("after failures: got %q, %v, header %v, want ok hello", v, err, resp.Header)
		}
		testutil.Eventually(t, 10*time.Second, func() error {
			// Sent is counted once the answer is queued: it may trail the surveyor.
			if st := r.Stats(); st.Panics != 1 || st.HandlerErrors != 2 || st.Declined != 1 || st.Received != 4 || st.Sent != 4 {
				return fmt.Errorf("got respondent stats %+v, want 1 panic, 2 errors, 1 declined, 4 received and sent", st)
			}
			return nil
		})
	})
}

func TestSurveyEnds(t *testing.T) {
	s := mustSurveyor(t, survey.WithListen(testutil.Inproc(t)))
	bg := context.Background()

	// Nobody connected: the survey runs to its own deadline.
	rs, err := s.Survey(bg, ping{}, survey.WithTimeout(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := rs.Next(bg); r != nil || !errors.Is(err, survey.ErrDone) || !errors.Is(err, spmesh.ErrTimeout) {
		t.Fatalf("deadline: got %v, %v, want ErrDone and ErrTimeout", r, err)
	}
	if m := rs.Missing(); m != nil {
		t.Fatalf("got missing %v, want nil (nobody expected)", m)
	}

	// The caller's ctx deadline, earlier than the timeout, ends it.
	ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
	rs, err = s.Survey(ctx, ping{}, survey.WithTimeout(time.Minute), survey.WithExpect("nobody"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Next(bg); !errors.Is(err, survey.ErrDone) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ctx deadline: got %v, want ErrDone and DeadlineExceeded", err)
	}
	cancel()
	if m := rs.Missing(); !slices.Equal(m, []string{"nobody"}) {
		t.Fatalf("got missing %v, want [nobody]", m)
	}

	// Cancelling the caller's ctx ends it.
	ctx, cancel = context.WithCancel(bg)
	rs, err = s.Survey(ctx, ping{}, survey.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := rs.Next(bg); !errors.Is(err, context.Canceled) {
		t.Fatalf("ctx cancel: got %v, want context.Canceled", err)
	}

	// An empty expected set ends it at once.
	rs, err = s.Survey(bg, ping{}, survey.WithTimeout(time.Minute), survey.WithExpect())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Next(bg); !errors.Is(err, survey.ErrDone) || errors.Is(err, spmesh.ErrTimeout) {
		t.Fatalf("nobody expected: got %v, want ErrDone", err)
	}

	// Closing the stream ends it.
	rs, err = s.Survey(bg, ping{}, survey.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	rs.Close()
	rs.Close()
	if _, err := rs.Next(bg); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("after Responses.Close: got %v, want ErrClosed", err)
	}

	// Closing the surveyor ends every stream.
	rs, err = s.Survey(bg, ping{}, survey.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := rs.Next(bg); !errors.Is(err, spmesh.ErrClosed) {
		t.Fatalf("after Surveyor.Close: got %v, want ErrClosed", err)
	}
}

func TestSurveyErrors(t *testing.T) {
	s := mustSurveyor(t, survey.WithListen(testutil.Inproc(t)), survey.WithMaxMessageSize(1024))
	ctx := context.Background()
	if _, err := s.Survey(ctx, make([]byte, 2048)); !errors.Is(err, spmesh.ErrTooLarge) {
		t.Errorf("oversized: got %v, want ErrTooLarge", err)
	}
	if _, err := s.Survey(ctx, make(chan int)); err == nil {
		t.Errorf("unencodable: got nil, want an error")
	}
	for name, o := range map[string]survey.SurveyOption{
		"zero timeout": survey.WithTimeout(0),
		"empty name":   survey.WithExpect("a", ""),
		"nil":          nil,
	} {
		if _, err := s.Survey(ctx, 1, o); !errors.Is(err, spmesh.ErrInvalidOption) {
			t.Errorf("%s: got %v, want ErrInvalidOption", name, err)
		}
	}
}

func TestRespondentNames(t *testing.T) {
	h := echo("")
	a := mustRespondent(t, h)
	b := mustRespondent(t, h)
	if a.Name() == "" || a.Name() == b.Name() {
		t.Fatalf("got default names %q and %q, want two different names", a.Name(), b.Name())
	}
	if c := mustRespondent(t, h, survey.WithName("db-1")); c.Name() != "db-1" {
		t.Fatalf("got %q, want db-1", c.Name())
	}
}

// TestDrain: Drain lets a running handler finish and send its answer.
func TestDrain(t *testing.T) {
	transports(t, func(t *testing.T, addr string) {
		s := mustSurveyor(t, survey.WithListen(addr))
		started, release := make(chan struct{}), make(chan struct{})
		r := mustRespondent(t, survey.HandlerFunc(func(ctx context.Context, q *survey.Question) (any, error) {
			close(started)
			<-release
			return "done", nil
		}), survey.WithDial(addr), survey.WithName("d"))
		peers(t, s, 1)
		rs, err := s.Survey(context.Background(), "work", survey.WithTimeout(time.Minute), survey.WithExpect("d"))
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		<-started
		drained := make(chan error, 1)
		go func() { drained <- r.Drain(context.Background()) }()
		close(release)
		got := collect(t, rs)
		if len(got) != 1 {
			t.Fatalf("got %d answers, want the drained handler's one", len(got))
		}
		if err := <-drained; err != nil {
			t.Fatalf("Drain: got %v, want nil", err)
		}
		if err := r.Drain(context.Background()); !errors.Is(err, spmesh.ErrClosed) {
			t.Fatalf("Drain after drain: got %v, want ErrClosed", err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("Close after Drain: got %v, want nil", err)
		}
	})
}

// TestDrainTimeout: a handler that outlives Drain's ctx is cancelled.
func TestDrainTimeout(t *testing.T) {
	addr := testutil.Inproc(t)
	s := mustSurveyor(t, survey.WithListen(addr))
	started := make(chan struct{})
	r := mustRespondent(t, survey.HandlerFunc(func(ctx context.Context, q *survey.Question) (any, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}), survey.WithDial(addr))
	peers(t, s, 1)
	rs, err := s.Survey(context.Background(), "work", survey.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := r.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
}

func surveyorPattern() testutil.Pattern {
	return testutil.Pattern{
		Open: func(t *testing.T, addr string) io.Closer {
			return mustSurveyor(t, survey.WithListen(addr))
		},
		Listens: true,
		// A survey with no respondent and a long timeout: Next blocks
		// until ctx ends (the survey ends with it) or the surveyor closes.
		Wait: func(ctx context.Context, s io.Closer) error {
			rs, err := s.(*survey.Surveyor).Survey(ctx, ping{}, survey.WithTimeout(time.Hour))
			if err != nil {
				return err
			}
			defer rs.Close()
			_, err = rs.Next(ctx)
			return err
		},
		Invalid: map[string]func() error{
			"nil codec":     func() error { _, err := survey.NewSurveyor(survey.WithCodec(nil)); return err },
			"bad address":   func() error { _, err := survey.NewSurveyor(survey.WithListen("foo://x")); return err },
			"queue zero":    func() error { _, err := survey.NewSurveyor(survey.WithQueueLen(0)); return err },
			"tiny max size": func() error { _, err := survey.NewRespondent(echo(""), survey.WithMaxMessageSize(1)); return err },
			"backoff": func() error {
				_, err := survey.NewRespondent(echo(""), survey.WithReconnect(time.Second, 0))
				return err
			},
			"nil registry":  func() error { _, err := survey.NewRespondent(echo(""), survey.WithDiscovery(nil, "x")); return err },
			"timeout":       func() error { _, err := survey.NewSurveyor(survey.WithTimeout(-time.Second)); return err },
			"empty name":    func() error { _, err := survey.NewRespondent(echo(""), survey.WithName("")); return err },
			"concurrency":   func() error { _, err := survey.NewRespondent(echo(""), survey.WithConcurrency(0)); return err },
			"wrong side 1":  func() error { _, err := survey.NewSurveyor(survey.WithName("x")); return err },
			"wrong side 2":  func() error { _, err := survey.NewRespondent(echo(""), survey.WithTimeout(time.Second)); return err },
			"wrong side 3":  func() error { _, err := survey.NewSurveyor(survey.WithConcurrency(2)); return err },
			"nil handler":   func() error { _, err := survey.NewRespondent(nil); return err },
			"nil expect fn": func() error { _, err := survey.NewSurveyor(survey.WithExpectFunc(nil)); return err },
			"nil option":    func() error { _, err := survey.NewSurveyor(nil); return err },
		},
		Hostile: hostileRespondent,
	}
}

// TestQueueFullDropped: answers past a survey's queue (WithQueueLen) are
// dropped and counted as DroppedQueueFull; an open survey is InFlight.
func TestQueueFullDropped(t *testing.T) {
	addr := testutil.Inproc(t)
	s := mustSurveyor(t, survey.WithListen(addr), survey.WithQueueLen(2))
	const n = 5
	gates := make([]chan struct{}, n)
	for i := range gates {
		gates[i] = make(chan struct{})
		gate := gates[i]
		mustRespondent(t, survey.HandlerFunc(func(ctx context.Context, q *survey.Question) (any, error) {
			select {
			case <-gate:
				return "answer", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}), survey.WithDial(addr))
	}
	peers(t, s, n)
	rs, err := s.Survey(context.Background(), ping{N: 1}, survey.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	// One answer at a time, so that none overflows mangos' own queue.
	for i, gate := range gates {
		close(gate)
		testutil.Eventually(t, 10*time.Second, func() error {
			if st := s.Stats(); st.Received+st.Dropped != uint64(i+1) {
				return fmt.Errorf("got %d received, %d dropped, want %d in all", st.Received, st.Dropped, i+1)
			}
			return nil
		})
	}
	if st := s.Stats(); st.Received != 2 || st.Dropped != 3 || st.DroppedQueueFull != 3 || st.InFlight != 1 {
		t.Fatalf("got %d received, %d dropped (%d queue full), %d in flight; want 2, 3 (3), 1",
			st.Received, st.Dropped, st.DroppedQueueFull, st.InFlight)
	}
	rs.Close()
	if st := s.Stats(); st.InFlight != 0 {
		t.Fatalf("got %d surveys in flight after Close, want 0", st.InFlight)
	}
}
