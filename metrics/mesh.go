package metrics

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/survey"
)

// StatsService is the reserved service name on which stats responders
// ([ServeMesh]) answer stats surveys ([QueryMesh]). Services whose name
// starts with "_spmesh." belong to spmesh itself.
const StatsService = "_spmesh.stats"

// MaxStatsMessage bounds a stats question or answer on the responder;
// give a surveyor the same bound (survey.WithMaxMessageSize). A Snapshot
// at its caps (MaxSnapshotSockets sockets, MaxSnapshotPeers peers each) is
// well under it.
const MaxStatsMessage = 1 << 20

// StatsQuery is the question of a stats survey.
type StatsQuery struct {
	// Service, when not empty, limits the answer to the sockets of that
	// service (the node figures are always there).
	Service string `json:"service,omitempty" msgpack:"service,omitempty"`
}

// ServeMesh makes node answer stats surveys: it opens a survey
// [survey.Respondent] on [StatsService], wired through node and named
// after it, that answers each survey with a [Snapshot] of node and of the
// sockets added to c. It needs no port of its own: the respondent dials the
// surveyors it discovers. Close the returned Respondent (before the node)
// to stop answering.
//
// What is answered, to any member of the mesh that asks: the node's name,
// member counts and discovery counters, and for each socket its service,
// role, figures and peers' addresses (at most MaxSnapshotSockets sockets
// and MaxSnapshotPeers peers each; the rest are counted, not listed).
// Nothing there is secret from a member: the endpoints are in discovery
// already. At its caps a Snapshot with 256-byte service names encodes to
// about 250 KB; one over MaxStatsMessage (names of many kilobytes) is not
// sent: the surveyor gets an error answer matching spmesh.ErrTooLarge. Surveys are answered two at a time; more wait in the socket's
// queue. A question that does not decode as a [StatsQuery] gets an error
// answer. opts are added to the respondent's options (a logger, say).
func ServeMesh(node *discovery.Node, c *Collector, opts ...survey.Option) (*survey.Respondent, error) {
	if node == nil || c == nil {
		return nil, errors.New("spmesh: metrics: ServeMesh: nil node or collector")
	}
	h := survey.HandlerFunc(func(_ context.Context, q *survey.Question) (any, error) {
		var sq StatsQuery
		if err := q.Decode(&sq); err != nil {
			return nil, fmt.Errorf("stats query: %w", err)
		}
		snap := &Snapshot{Time: time.Now()}
		nodeSnapshot(node, snap)
		snap.Sockets, snap.Omitted = c.Snapshot(sq.Service)
		return snap, nil
	})
	all := append([]survey.Option{
		survey.WithDiscovery(node, StatsService),
		survey.WithName(node.Name()),
		survey.WithConcurrency(2),
		survey.WithMaxMessageSize(MaxStatsMessage),
	}, opts...)
	return survey.NewRespondent(h, all...)
}

// MeshStats is the result of one stats survey.
type MeshStats struct {
	// Nodes are the snapshots answered, sorted by node name.
	Nodes []Snapshot `json:"nodes"`
	// Missing are the expected responders that did not answer in time.
	Missing []string `json:"missing,omitempty"`
	// Errors are the answers that were not a snapshot, by responder: an
	// error answer, or one that did not decode.
	Errors map[string]string `json:"errors,omitempty"`
}

// QueryMesh runs one stats survey through sv, a Surveyor wired with
// survey.WithDiscovery(node, StatsService), and gathers the snapshots
// until the survey ends (every responder announced at its start answered,
// or its timeout: opts). service, when not empty, limits each answer to
// that service's sockets. It fails only when the survey cannot be sent or
// ctx ends; who did not answer is in Missing.
func QueryMesh(ctx context.Context, sv *survey.Surveyor, service string, opts ...survey.SurveyOption) (*MeshStats, error) {
	res, err := sv.Survey(ctx, StatsQuery{Service: service}, opts...)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	ms := &MeshStats{}
	for r, err := range res.All(ctx) {
		if err != nil {
			return nil, err
		}
		var snap Snapshot
		switch {
		case r.Err != nil:
			ms.addError(r.From, r.Err)
		case r.Declined:
			ms.addError(r.From, errors.New("declined"))
		default:
			if err := r.Decode(&snap); err != nil {
				ms.addError(r.From, err)
				continue
			}
			ms.Nodes = append(ms.Nodes, snap)
		}
	}
	ms.Missing = res.Missing()
	slices.SortFunc(ms.Nodes, func(a, b Snapshot) int { return cmp.Compare(a.Node, b.Node) })
	return ms, nil
}

func (ms *MeshStats) addError(from string, err error) {
	if ms.Errors == nil {
		ms.Errors = map[string]string{}
	}
	ms.Errors[from] = err.Error()
}
