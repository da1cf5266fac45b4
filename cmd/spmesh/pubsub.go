package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spmesh/spmesh/pubsub"
	"github.com/urfave/cli/v3"
)

const (
	flagService     = "service"
	flagSubscribers = "subscribers"
	flagLinger      = "linger"
)

func serviceFlag() cli.Flag {
	return &cli.StringFlag{Name: flagService, Aliases: []string{"s"}, Category: "mesh",
		Usage: "the pub/sub `service` publishers advertise (default: the topic's first token, e.g. images for images.ready)"}
}

func lingerFlag() cli.Flag {
	return &cli.DurationFlag{Name: flagLinger, Category: "message", Value: 250 * time.Millisecond,
		Usage: "after the last message, wait this long for queued messages to reach the wire before exiting"}
}

// bareCommandNames lists the commands that take --bare, for the usage
// error of the others.
func bareCommandNames() string {
	names := slices.Sorted(maps.Keys(bareCommands))
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// pubsubService is --service, else the first token of topic.
func pubsubService(cmd *cli.Command, topic string) (string, error) {
	if s := cmd.String(flagService); s != "" {
		return s, nil
	}
	first, _, _ := strings.Cut(topic, ".")
	if first == "" || strings.ContainsAny(first, "*>") {
		return "", usagef("%q starts with a wildcard: name the service with --service", topic)
	}
	return first, nil
}

func pubCommand() *cli.Command {
	return &cli.Command{
		Name:      "pub",
		Usage:     "publish a message on a topic (or one message per line of stdin)",
		ArgsUsage: "TOPIC [MESSAGE]",
		Description: `pub publishes MESSAGE (or the --file, or each line of stdin) on TOPIC.
In a mesh it advertises itself as a publisher of --service (default: the
topic's first token) and waits, at most --wait, until --subscribers
subscribers are connected (subscribers dial publishers once gossip tells
them); then it publishes, lingers, and leaves. Pub/sub is at most once: a
message published while nobody is connected is lost (a warning says so).

With the msgpack codec a MESSAGE that parses as JSON is sent as that value,
anything else as a string; with --codec raw the bytes go as they are.`,
		Flags: flags(meshFlags(), addrFlags(), bodyFlags(), []cli.Flag{
			serviceFlag(),
			&cli.IntFlag{Name: flagSubscribers, Value: 1, Category: "message",
				Usage: "wait (at most --wait) for this many subscribers before publishing"},
			lingerFlag(),
		}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			s, err := newSession(cmd)
			if err != nil {
				return err
			}
			args := cmd.Args().Slice()
			if len(args) == 0 {
				return usagef("missing TOPIC")
			}
			topic, args := args[0], args[1:]
			if s.header, err = headers(cmd); err != nil {
				return err
			}
			if err := s.needWiring(ctx); err != nil {
				return err
			}
			defer s.close()
			svc := ""
			if s.node != nil {
				if svc, err = pubsubService(cmd, topic); err != nil {
					return err
				}
			}
			opts := append([]pubsub.Option{pubsub.WithCodec(s.codec)},
				wiring(s, svc, pubsub.WithDiscovery, pubsub.WithListen, pubsub.WithDial, pubsub.WithTLS, pubsub.WithRequireTLS)...)
			p, err := pubsub.NewPublisher(opts...)
			if err != nil {
				return err
			}
			defer p.Close()
			if want := cmd.Int(flagSubscribers); want > 0 {
				err := s.waitFor(ctx, func() bool { return p.Stats().Peers >= want })
				if errors.Is(err, errWaited) {
					s.warnf("%d of %d subscribers connected after %v; publishing anyway", p.Stats().Peers, want, cmd.Duration(flagWait))
				} else if err != nil {
					return err
				}
			}
			s.logf("publishing on %s to %d subscribers", topic, p.Stats().Peers)
			enc := encoder{codec: s.codec, asString: cmd.Bool(flagString)}
			err = messages(cmd, args, enc, func(v any) error {
				return p.PublishHeader(ctx, topic, s.header, v)
			})
			if err != nil {
				return err
			}
			s.logf("published %d messages", p.Stats().Sent)
			return linger(ctx, cmd.Duration(flagLinger))
		},
	}
}

// linger waits d (or until ctx ends) so that queued messages reach the wire.
func linger(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

func subCommand() *cli.Command {
	return &cli.Command{
		Name:      "sub",
		Usage:     "print the messages published on topics matching PATTERN",
		ArgsUsage: "PATTERN...",
		Description: `sub subscribes to PATTERNs ("images.ready"; "images.*" one token;
"images.>" one or more; ">" everything) and prints every message until
interrupted (or --count messages): topic, publisher id, sequence number,
headers, body. Msgpack bodies are shown as JSON; raw bodies as text, or as
"hex:..." when they are not printable. Messages missed from a publisher
(sequence gaps: a slow subscriber drops) are reported on stderr, and as
"missed" in --json output.

In a mesh it dials every publisher of --service (default: the first token of
the first PATTERN) and keeps doing so as publishers come and go.`,
		Flags: flags(meshFlags(), addrFlags(), []cli.Flag{
			serviceFlag(),
			&cli.IntFlag{Name: flagCount, Aliases: []string{"n"}, Usage: "exit after this many messages (0: until interrupted)"},
		}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			s, err := newSession(cmd)
			if err != nil {
				return err
			}
			patterns := cmd.Args().Slice()
			if len(patterns) == 0 {
				return usagef("missing PATTERN")
			}
			if err := s.needWiring(ctx); err != nil {
				return err
			}
			defer s.close()
			svc := ""
			if s.node != nil {
				if svc, err = pubsubService(cmd, patterns[0]); err != nil {
					return err
				}
			}
			opts := append([]pubsub.Option{pubsub.WithCodec(s.codec), pubsub.WithSubscribe(patterns...)},
				wiring(s, svc, pubsub.WithDiscovery, pubsub.WithListen, pubsub.WithDial, pubsub.WithTLS, pubsub.WithRequireTLS)...)
			sub, err := pubsub.NewSubscriber(opts...)
			if err != nil {
				return err
			}
			defer sub.Close()
			if svc != "" {
				s.logf("subscribed to %s on service %s", strings.Join(patterns, " "), svc)
			} else {
				s.logf("subscribed to %s", strings.Join(patterns, " "))
			}
			g := gaps{}
			return printAll(ctx, cmd, sub.Next, func(m *pubsub.Message) error {
				return s.printMessage(m, g.missed(m.Publisher, m.Topic, m.Seq))
			})
		},
	}
}

// gaps follows the sequence numbers of each publisher and topic.
type gaps map[stream]uint64

type stream struct {
	pub   uint64
	topic string
}

// missed records seq and returns how many messages of that publisher and
// topic were skipped before it (0 for the first one seen: the subscriber
// may have joined late).
func (g gaps) missed(pub uint64, topic string, seq uint64) uint64 {
	k := stream{pub, topic}
	prev, ok := g[k]
	g[k] = seq
	if ok && seq > prev+1 {
		return seq - prev - 1
	}
	return 0
}

func (s *session) printMessage(m *pubsub.Message, missed uint64) error {
	pub := fmt.Sprintf("%016x", m.Publisher)
	o := map[string]any{"topic": m.Topic, "publisher": pub, "seq": m.Seq, "id": m.ID,
		"time": m.Time.Format(time.RFC3339Nano)}
	if missed > 0 {
		if s.json {
			o["missed"] = missed
		} else {
			s.warnf("gap: %d messages missed from publisher %s on %s (seq %d-%d)", missed, pub, m.Topic, m.Seq-missed, m.Seq-1)
		}
	}
	return s.printReceived(o, fmt.Sprintf("%s pub=%s seq=%d", m.Topic, pub, m.Seq), m.Header, m.Data)
}
