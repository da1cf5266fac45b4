package discovery_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/internal/testutil"
)

// TestMemberCounts: members counted by state, a leave counted as left.
func TestMemberCounts(t *testing.T) {
	nodes := mesh(t, 3)
	want := discovery.MemberCounts{Alive: 3}
	testutil.Eventually(t, 60*time.Second, func() error {
		for _, n := range nodes {
			if got := n.MemberCounts(); got != want {
				return fmt.Errorf("%s: got %+v, want %+v", n.Name(), got, want)
			}
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := nodes[2].Leave(ctx); err != nil {
		t.Fatal(err)
	}
	want = discovery.MemberCounts{Alive: 2, Left: 1}
	testutil.Eventually(t, 60*time.Second, func() error {
		if got := nodes[0].MemberCounts(); got != want {
			return fmt.Errorf("got %+v, want %+v", got, want)
		}
		return nil
	})
	if got := nodes[2].MemberCounts(); got != (discovery.MemberCounts{}) {
		t.Fatalf("after Leave: got %+v, want zero counts", got)
	}
}
