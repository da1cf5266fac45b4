package survey_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/internal/testutil"
	"github.com/spmesh/spmesh/survey"
)

// TestDiscovery wires by service name: the surveyor listens on an
// ephemeral port and advertises itself, respondents dial every surveyor of
// the service, and lose it when it closes (withdrawing its endpoint).
func TestDiscovery(t *testing.T) {
	reg := discovery.NewStatic("127.0.0.1")
	t.Cleanup(func() { reg.Close() })
	s := mustSurveyor(t, survey.WithDiscovery(reg, "health"))
	var rs []*survey.Respondent
	var names []string
	for i := range 3 {
		name := fmt.Sprintf("node-%d", i)
		rs = append(rs, mustRespondent(t, echo(name), survey.WithDiscovery(reg, "health"), survey.WithName(name)))
		names = append(names, name)
	}
	mustRespondent(t, echo("other"), survey.WithDiscovery(reg, "other-service"), survey.WithName("other"))
	peers(t, s, 3)
	ctx := context.Background()
	res, err := s.Survey(ctx, ping{N: 9}, survey.WithTimeout(time.Minute), survey.WithExpect(names...))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if got := collect(t, res); len(got) != 3 {
		t.Fatalf("got %d answers, want 3", len(got))
	}
	s.Close()
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, r := range rs {
			if n := r.Stats().Peers; n != 0 {
				return fmt.Errorf("%s: got %d peers after the surveyor withdrew, want 0", r.Name(), n)
			}
		}
		return nil
	})
}
