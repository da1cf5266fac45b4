package pubsub_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/pubsub"
)

// Zero values and nil pointers decode to an error wrapping ErrDecode,
// through the method and through spmesh.Decode, never a panic.
func TestZeroValueDecode(t *testing.T) {
	for name, d := range map[string]spmesh.Decoder{
		"zero Message": &pubsub.Message{}, "nil Message": (*pubsub.Message)(nil),
	} {
		var v string
		if err := d.Decode(&v); !errors.Is(err, spmesh.ErrDecode) {
			t.Errorf("%s: Decode = %v, want ErrDecode", name, err)
		}
		if _, err := spmesh.Decode[string](d); !errors.Is(err, spmesh.ErrDecode) {
			t.Errorf("spmesh.Decode[string](%s) = %v, want ErrDecode", name, err)
		}
	}
}

// One side's options given to the other side fail naming the option.
func TestSidedOptionNamed(t *testing.T) {
	pubOnly := map[string]pubsub.Option{
		"WithBatching":       pubsub.WithBatching(false),
		"WithTailInterval":   pubsub.WithTailInterval(time.Second),
		"WithSlowSubscriber": pubsub.WithSlowSubscriber(func(pubsub.SlowSubscriber) {}),
	}
	for name, o := range pubOnly {
		s, err := pubsub.NewSubscriber(o)
		if !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), name) {
			t.Errorf("NewSubscriber(%s) = %v, want ErrInvalidOption naming it", name, err)
		}
		if s != nil {
			s.Close()
		}
	}
	subOnly := map[string]pubsub.Option{
		"WithSubscribe":  pubsub.WithSubscribe("a.>"),
		"WithGapHandler": pubsub.WithGapHandler(func(pubsub.Gap) {}),
	}
	for name, o := range subOnly {
		p, err := pubsub.NewPublisher(o)
		if !errors.Is(err, spmesh.ErrInvalidOption) || !strings.Contains(err.Error(), name) {
			t.Errorf("NewPublisher(%s) = %v, want ErrInvalidOption naming it", name, err)
		}
		if p != nil {
			p.Close()
		}
	}
	// Both sides still take their own and the shared ones.
	p, err := pubsub.NewPublisher(pubsub.WithBatching(true), pubsub.WithTailInterval(time.Second), pubsub.WithBackpressure(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	s, err := pubsub.NewSubscriber(pubsub.WithSubscribe("a"), pubsub.WithGapHandler(func(pubsub.Gap) {}), pubsub.WithBackpressure(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}
