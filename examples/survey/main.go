// Command survey asks every worker "how loaded are you?" and gathers the
// answers until all the expected workers have answered or the deadline
// passes: one worker declines, one never answers. Everything runs in this
// process over loopback TCP, wired through a discovery.Static registry.
//
//	go run ./examples/survey
package main

import (
	"context"
	"fmt"
	"log"
	"slices"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/survey"
)

// Load is a worker's answer.
type Load struct {
	Busy, Capacity int
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg := discovery.NewStatic("127.0.0.1")
	defer reg.Close()

	s, err := survey.NewSurveyor(survey.WithDiscovery(reg, "workers"), survey.WithTimeout(500*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	busy := map[string]int{"worker-a": 1, "worker-b": 3, "worker-c": 4}
	for name, n := range busy {
		r, err := survey.NewRespondent(survey.TypedHandler(
			func(ctx context.Context, q *survey.Question, question string) (Load, error) {
				if n >= 4 {
					return Load{}, survey.ErrDeclined // full: answers "no"
				}
				return Load{Busy: n, Capacity: 4}, nil
			}), survey.WithDiscovery(reg, "workers"), survey.WithName(name))
		if err != nil {
			log.Fatal(err)
		}
		defer r.Close()
	}
	// A survey reaches only the respondents connected when it is sent.
	if err := s.WaitPeers(ctx, len(busy)); err != nil {
		log.Fatal(err)
	}

	// worker-d is expected but does not exist: the survey runs to its
	// deadline and reports it missing.
	rs, err := s.Survey(ctx, "load?", survey.WithExpect("worker-a", "worker-b", "worker-c", "worker-d"))
	if err != nil {
		log.Fatal(err)
	}
	defer rs.Close()
	var lines []string
	for resp, err := range rs.All(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		if resp.Declined {
			lines = append(lines, resp.From+": declined")
			continue
		}
		l, err := spmesh.Decode[Load](resp)
		if err != nil {
			log.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf("%s: %d of %d busy", resp.From, l.Busy, l.Capacity))
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	fmt.Println("missing:", rs.Missing())
}
