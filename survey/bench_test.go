package survey_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/survey"
)

// BenchmarkSurvey measures whole surveys: one question to 8 respondents
// and all 8 answers taken, the survey finishing as soon as the last
// expected answer arrives. "seq" runs one survey at a time (latency
// bound); "conc16" keeps 16 surveys in flight from one Surveyor.
func BenchmarkSurvey(b *testing.B) {
	const respondents = 8
	for _, tr := range []struct {
		name string
		addr func(testing.TB) string
	}{{"tcp", testutil.FreeTCP}, {"inproc", testutil.Inproc}} {
		for _, inflight := range []int{1, 16} {
			name := fmt.Sprintf("%s/%drespondents/seq", tr.name, respondents)
			if inflight > 1 {
				name = fmt.Sprintf("%s/%drespondents/conc%d", tr.name, respondents, inflight)
			}
			b.Run(name, func(b *testing.B) { benchSurvey(b, tr.addr(b), respondents, inflight) })
		}
	}
}

func benchSurvey(b *testing.B, addr string, n, inflight int) {
	s, err := survey.NewSurveyor(survey.WithListen(addr))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var names []string
	for i := range n {
		name := fmt.Sprintf("r%d", i)
		r, err := survey.NewRespondent(echo(name), survey.WithDial(addr), survey.WithName(name))
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		names = append(names, name)
	}
	testutil.Eventually(b, 10*time.Second, func() error {
		if got := s.Stats().Peers; got != n {
			return fmt.Errorf("got %d peers, want %d", got, n)
		}
		return nil
	})
	ctx := context.Background()
	one := func(i int) error {
		rs, err := s.Survey(ctx, ping{N: i}, survey.WithTimeout(10*time.Second), survey.WithExpect(names...))
		if err != nil {
			return err
		}
		defer rs.Close()
		got := 0
		for {
			_, err := rs.Next(ctx)
			if errors.Is(err, survey.ErrDone) {
				break
			}
			if err != nil {
				return err
			}
			got++
		}
		if got != n {
			return fmt.Errorf("survey %d: got %d answers, want %d (missing %v)", i, got, n, rs.Missing())
		}
		return nil
	}
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, inflight)
	for range inflight {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > b.N {
					return
				}
				if err := one(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "surveys/s")
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "answers/s")
}
