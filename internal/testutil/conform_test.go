package testutil

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/spmesh/spmesh"
)

// The ten types are exactly the pattern packages' constructors: a new
// socket type fails here until it is added to Types (and so to its
// package's conformance run, which Conform checks).
func TestConformTypes(t *testing.T) {
	n := 0
	for pkg, want := range Types {
		got, err := Constructors(filepath.Join("..", "..", pkg))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s constructors: got %v, want %v", pkg, got, want)
		}
		n += len(got)
	}
	if n != 10 {
		t.Errorf("socket types: got %d, want 10", n)
	}
}

func TestConformTally(t *testing.T) {
	c := newTally(3)
	c.add(0)
	c.add(1)
	if err := c.check(); err == nil {
		t.Error("missing message: got nil, want an error")
	}
	c.add(2)
	if err := c.check(); err != nil {
		t.Errorf("all once: got %v, want nil", err)
	}
	c.add(2)
	if err := c.check(); err == nil {
		t.Error("duplicate: got nil, want an error")
	}
	c = newTally(1)
	c.add(0)
	c.add(7)
	if err := c.check(); err == nil {
		t.Error("index never sent: got nil, want an error")
	}
}

type plainStats struct{}

func (plainStats) Stats() spmesh.Stats { return spmesh.Stats{Sent: 1} }

type embedStats struct{}

type bigStats struct {
	spmesh.Stats
	Extra int
}

func (embedStats) Stats() bigStats { return bigStats{Stats: spmesh.Stats{Sent: 2}} }

func TestConformCommonStats(t *testing.T) {
	if st, err := CommonStats(plainStats{}); err != nil || st.Sent != 1 {
		t.Errorf("plain: got %+v, %v, want Sent 1", st.Sent, err)
	}
	if st, err := CommonStats(embedStats{}); err != nil || st.Sent != 2 {
		t.Errorf("embedded: got %+v, %v, want Sent 2", st.Sent, err)
	}
	if _, err := CommonStats(struct{}{}); err == nil {
		t.Error("no Stats method: got nil, want an error")
	}
}
