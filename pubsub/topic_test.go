package pubsub

import (
	"errors"
	"testing"

	"github.com/spmesh/spmesh"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern string
		yes     []string
		no      []string
	}{
		{"images.ready", []string{"images.ready"}, []string{"images.ready2", "images.ready.x", "images", "images.rea", "x.images.ready"}},
		{"images.*", []string{"images.ready", "images.x"}, []string{"images", "images.ready.x", "imagesx.ready", "other.ready"}},
		{"images.>", []string{"images.ready", "images.ready.x.y"}, []string{"images", "imagesx.a", "other.a"}},
		{"*.ready", []string{"images.ready", "x.ready"}, []string{"ready", "a.b.ready", "images.ready2"}},
		{"a.*.c", []string{"a.b.c", "a.x.c"}, []string{"a.c", "a.b.c.d", "a.b.cc"}},
		{"*", []string{"a", "images"}, []string{"a.b"}},
		{">", []string{"a", "a.b.c"}, nil},
		{"a.*.>", []string{"a.b.c", "a.b.c.d"}, []string{"a.b", "a"}},
	}
	for _, c := range cases {
		p, err := parsePattern(c.pattern)
		if err != nil {
			t.Fatalf("%q: %v", c.pattern, err)
		}
		for _, topic := range c.yes {
			if !p.match(topic) {
				t.Errorf("pattern %q, topic %q: got no match, want match", c.pattern, topic)
			}
			if !hasPrefix(append([]byte(topic), 0), p.prefix) {
				t.Errorf("pattern %q, topic %q: mangos prefix %q would filter it out", c.pattern, topic, p.prefix)
			}
		}
		for _, topic := range c.no {
			if p.match(topic) {
				t.Errorf("pattern %q, topic %q: got match, want none", c.pattern, topic)
			}
		}
	}
}

func hasPrefix(b, p []byte) bool { return len(b) >= len(p) && string(b[:len(p)]) == string(p) }

func TestBadPatterns(t *testing.T) {
	for _, s := range []string{"", "a..b", ".a", "a.", "a.>.b", "a*", "a.b>", ">.a", "a b", "a\tb", "a\x00"} {
		if _, err := parsePattern(s); !errors.Is(err, spmesh.ErrInvalidTopic) {
			t.Errorf("pattern %q: got %v, want ErrInvalidTopic", s, err)
		}
	}
}

func TestMatchAllocs(t *testing.T) {
	p, _ := parsePattern("images.*.>")
	if n := testing.AllocsPerRun(100, func() { p.match("images.a.b.c") }); n != 0 {
		t.Fatalf("got %v allocs per match, want 0", n)
	}
}
