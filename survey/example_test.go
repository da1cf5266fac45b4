package survey_test

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/survey"
)

// Job is the question: can you take this job?
type Job struct {
	Kind string
}

// Capacity is the answer of a worker that can.
type Capacity struct {
	Free int
}

// "Who has capacity?": ask every worker, gather the answers until all the
// expected workers have answered (or the deadline passes), and see who
// declined and who did not answer.
func Example() {
	const addr = "inproc://example-capacity"
	s, err := survey.NewSurveyor(survey.WithListen(addr)) // default deadline: 1s
	if err != nil {
		panic(err)
	}
	defer s.Close()

	free := map[string]int{"worker-a": 3, "worker-b": 0, "worker-c": 5}
	for name, n := range free {
		r, err := survey.NewRespondent(survey.TypedHandler(func(ctx context.Context, q *survey.Question, job Job) (Capacity, error) {
			if n == 0 {
				return Capacity{}, survey.ErrDeclined // "no": answered, but no capacity
			}
			return Capacity{Free: n}, nil
		}), survey.WithDial(addr), survey.WithName(name))
		if err != nil {
			panic(err)
		}
		defer r.Close()
	}
	// Respondents dial in the background, and a survey reaches only those
	// connected when it is sent.
	ctx := context.Background()
	if err := s.WaitPeers(ctx, len(free)); err != nil {
		panic(err)
	}
	rs, err := s.Survey(ctx, Job{Kind: "resize"}, survey.WithExpect("worker-a", "worker-b", "worker-c", "worker-d"))
	if err != nil {
		panic(err)
	}
	defer rs.Close()
	var lines []string
	for resp, err := range rs.All(ctx) { // ends at the deadline: worker-d never answers
		if err != nil {
			panic(err)
		}
		c, err := spmesh.Decode[Capacity](resp)
		switch {
		case resp.Declined:
			lines = append(lines, resp.From+" declined")
		case err != nil:
			lines = append(lines, resp.From+" failed: "+err.Error())
		default:
			lines = append(lines, fmt.Sprintf("%s has %d free", resp.From, c.Free))
		}
	}
	slices.Sort(lines) // answers arrive in any order
	fmt.Println(strings.Join(lines, "\n"))
	fmt.Println("missing:", rs.Missing())
	// Output:
	// worker-a has 3 free
	// worker-b declined
	// worker-c has 5 free
	// missing: [worker-d]
}
