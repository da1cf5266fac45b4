package survey_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/hostile"
	"github.com/spmesh/spmesh/internal/sock"
	"github.com/spmesh/spmesh/internal/wire"
	"github.com/spmesh/spmesh/survey"
)

// connectorConns caps the idle-connection attack on a connector: each
// hostile connection is a listener it dials (and keeps redialing after).
const connectorConns = 20

// hostileAnswerer answers the legit question ("hi": "ok"; "big": 256 KiB)
// and decodes anything else into every type of the suite before refusing.
func hostileAnswerer(name string) survey.HandlerFunc {
	big := strings.Repeat("x", 256<<10)
	return func(_ context.Context, q *survey.Question) (any, error) {
		var s string
		if q.Decode(&s) == nil {
			switch s {
			case "hi":
				return "ok " + name, nil
			case "big":
				return big, nil
			}
		}
		hostile.DecodeTypes(q.Decode)
		return nil, errors.New("not a legit question")
	}
}

// firstFrom runs surveys of "hi" expecting name until name answers one,
// decoding the other answers (the attacker's) into every type of the
// suite. A survey whose answer was dropped (a respondent drops answers it
// cannot send in time) ends after a second and the next one is tried.
// (Expecting name lets a survey end, and its collector go, once name
// answered, rather than at its deadline.)
func firstFrom(ctx context.Context, s *survey.Surveyor, name string) error {
	for {
		err := surveyOnce(ctx, s, name)
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
}

func surveyOnce(ctx context.Context, s *survey.Surveyor, name string) error {
	rs, err := s.Survey(ctx, "hi", survey.WithTimeout(time.Second), survey.WithExpect(name))
	if err != nil {
		return err
	}
	defer rs.Close()
	for {
		r, err := rs.Next(ctx)
		if err != nil {
			return err
		}
		var got string
		if r.From == name && r.Decode(&got) == nil {
			if got != "ok "+name {
				return fmt.Errorf("got %q from %s", got, name)
			}
			return nil
		}
		hostile.DecodeTypes(r.Decode)
	}
}

// TestRespondentHostilePeers runs the hostile-peer suite against a
// Respondent over real TCP: it dials a legit Surveyor, which keeps
// surveying it, and each hostile surveyor (a raw listener).
//
// Figures: go test -run TestRespondentHostilePeers -v ./survey/
func TestRespondentHostilePeers(t *testing.T) {
	sv := mustSurveyor(t, survey.WithListen("tcp://127.0.0.1:0"))
	r := mustRespondent(t, hostileAnswerer("r1"), survey.WithName("r1"), survey.WithDial(sv.Addrs()[0]),
		survey.WithSendTimeout(200*time.Millisecond)) // the never-reads attack shows within a second
	peers(t, sv, 1)
	tg := hostile.Target{
		Name: "respondent",
		Connect: func() (*hostile.Conn, error) {
			l, err := hostile.Listen(hostile.ProtoSurveyor)
			if err != nil {
				return nil, err
			}
			defer l.Close()
			if err := r.Dial(l.Addr()); err != nil {
				return nil, err
			}
			return l.Accept(10 * time.Second)
		},
		Kind:      wire.KindSurvey,
		ReqHeader: true,
		Legit:     func(ctx context.Context) error { return firstFrom(ctx, sv, "r1") },
		Stats:     func() spmesh.Stats { return r.Stats().Stats },
		Big:       mustMarshal(t, "big"),
		BigHeld:   hostile.AnswersHeld(sock.ServerQueueFloor + 2 + survey.DefaultConcurrency),
		Bodies:    true,
		MaxConns:  connectorConns,
	}
	hostile.Run(t, tg, hostile.StandardAttacks(tg, 8<<20))
}

// TestSurveyorHostilePeers runs the hostile-peer suite against a Surveyor
// over real TCP: hostile respondents dial it and answer its surveys with
// the attack's frames, while a legit respondent answers too.
//
// Figures: go test -run TestSurveyorHostilePeers -v ./survey/
func TestSurveyorHostilePeers(t *testing.T) {
	sv := mustSurveyor(t, survey.WithListen("tcp://127.0.0.1:0"))
	addr := sv.Addrs()[0]
	mustRespondent(t, hostileAnswerer("legit"), survey.WithName("legit"), survey.WithDial(addr))
	peers(t, sv, 1)
	tg := hostile.Target{
		Name:     "surveyor",
		Connect:  func() (*hostile.Conn, error) { return hostile.Dial(addr, hostile.ProtoRespondent) },
		Kind:     wire.KindResponse,
		Answer:   true,
		Legit:    func(ctx context.Context) error { return firstFrom(ctx, sv, "legit") },
		Stats:    func() spmesh.Stats { return sv.Stats().Stats },
		Bodies:   true,
		MaxConns: 200,
	}
	hostile.Run(t, tg, hostile.StandardAttacks(tg, 8<<20))
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := spmesh.Msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
