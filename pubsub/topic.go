package pubsub

import (
	"fmt"
	"strings"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/internal/wire"
)

// pattern is a parsed subscription: NATS subject semantics over
// dot-separated tokens, "*" matching one token and a final ">" one or more.
type pattern struct {
	raw    string
	toks   []string
	prefix []byte // the mangos prefix filter: literal tokens before the first wildcard
}

func checkTopicBytes(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", spmesh.ErrInvalidTopic)
	}
	for i := 0; i < len(s); i++ {
		if !wire.ValidTopicByte(s[i]) || s[i] == ' ' {
			return fmt.Errorf("%w: %q: byte %#x at %d (no spaces or control bytes)", spmesh.ErrInvalidTopic, s, s[i], i)
		}
	}
	return nil
}

// checkTopic validates a publish topic: non-empty tokens, no wildcards.
func checkTopic(topic string) error {
	if err := checkTopicBytes(topic); err != nil {
		return err
	}
	for tok := range strings.SplitSeq(topic, ".") {
		if tok == "" {
			return fmt.Errorf("%w: %q: empty token", spmesh.ErrInvalidTopic, topic)
		}
		if tok == "*" || tok == ">" {
			return fmt.Errorf("%w: %q: wildcards are for subscriptions only", spmesh.ErrInvalidTopic, topic)
		}
	}
	return nil
}

func parsePattern(s string) (pattern, error) {
	if err := checkTopicBytes(s); err != nil {
		return pattern{}, err
	}
	p := pattern{raw: s, toks: strings.Split(s, ".")}
	lit := 0
	wild := false
	for i, tok := range p.toks {
		switch {
		case tok == "":
			return pattern{}, fmt.Errorf("%w: %q: empty token", spmesh.ErrInvalidTopic, s)
		case tok == ">" && i != len(p.toks)-1:
			return pattern{}, fmt.Errorf("%w: %q: '>' must be the last token", spmesh.ErrInvalidTopic, s)
		case tok == "*" || tok == ">":
			wild = true
		case strings.ContainsAny(tok, "*>"):
			return pattern{}, fmt.Errorf("%w: %q: wildcards must be whole tokens", spmesh.ErrInvalidTopic, s)
		default:
			if !wild {
				lit = i + 1
			}
		}
	}
	if !wild {
		p.prefix = append([]byte(s), 0)
	} else if lit > 0 {
		p.prefix = []byte(strings.Join(p.toks[:lit], ".") + ".")
	} else {
		p.prefix = []byte{}
	}
	return p, nil
}

// match reports whether topic (a valid publish topic) matches p, without
// allocating.
func (p *pattern) match(topic string) bool {
	for i, tok := range p.toks {
		if topic == "" {
			return false
		}
		if tok == ">" {
			return true
		}
		var t string
		if j := strings.IndexByte(topic, '.'); j >= 0 {
			t, topic = topic[:j], topic[j+1:]
			if topic == "" {
				return false
			}
		} else {
			t, topic = topic, ""
		}
		if tok != "*" && tok != t {
			return false
		}
		if i == len(p.toks)-1 {
			return topic == ""
		}
	}
	return false
}
