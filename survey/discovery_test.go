package survey_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
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

// TestDiscoveryExpectsAnnouncedRespondents: with discovery, respondents
// announce themselves, so a survey with a one-minute deadline ends as soon
// as every announced respondent answered, and names the silent ones.
func TestDiscoveryExpectsAnnouncedRespondents(t *testing.T) {
	reg := discovery.NewStatic("127.0.0.1")
	t.Cleanup(func() { reg.Close() })
	s := mustSurveyor(t, survey.WithDiscovery(reg, "health"))
	var rs []*survey.Respondent
	for i := range 3 {
		rs = append(rs, mustRespondent(t, echo(fmt.Sprint("n", i)), survey.WithDiscovery(reg, "health"), survey.WithName(fmt.Sprint("n", i))))
	}
	peers(t, s, 3)
	ctx := context.Background()
	res, err := s.Survey(ctx, ping{N: 1}, survey.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, res); len(got) != 3 {
		t.Fatalf("got %d answers, want 3", len(got))
	}
	if m := res.Missing(); len(m) != 0 {
		t.Fatalf("got missing %v, want none", m)
	}
	res.Close()

	// A respondent that is announced but cannot be reached: reported missing
	// at the deadline.
	withdraw, err := reg.Advertise(spmesh.Endpoint{Service: "health", Role: spmesh.RoleRespondent, Addr: spmesh.NameAddrPrefix + "ghost"})
	if err != nil {
		t.Fatal(err)
	}
	// (The surveyor learns of it asynchronously: survey until it does.)
	testutil.Eventually(t, 10*time.Second, func() error {
		res, err := s.Survey(ctx, ping{N: 2}, survey.WithTimeout(200*time.Millisecond))
		if err != nil {
			return err
		}
		defer res.Close()
		if got := collect(t, res); len(got) != 3 {
			t.Fatalf("got %d answers, want 3", len(got))
		}
		if m := res.Missing(); len(m) != 1 || m[0] != "ghost" {
			return fmt.Errorf("got missing %v, want [ghost]", m)
		}
		return nil
	})
	withdraw()

	// A respondent that closes withdraws its name: the next survey expects
	// only the two left and still finishes early.
	rs[0].Close()
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := s.Stats().Peers; n != 2 {
			return fmt.Errorf("got %d peers, want 2", n)
		}
		return nil
	})
	testutil.Eventually(t, 20*time.Second, func() error {
		res, err := s.Survey(ctx, ping{N: 3}, survey.WithTimeout(2*time.Second))
		if err != nil {
			return err
		}
		defer res.Close()
		if got := collect(t, res); len(got) != 2 {
			t.Fatalf("got %d answers, want 2", len(got))
		}
		if m := res.Missing(); len(m) != 0 {
			return fmt.Errorf("got missing %v, want none once n0 withdrew", m)
		}
		return nil
	})
}
