package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/pipeline"
	"github.com/urfave/cli/v3"
)

func pushCommand() *cli.Command {
	return &cli.Command{
		Name:      "push",
		Usage:     "push a message to one puller of a service (or one message per line of stdin)",
		ArgsUsage: "SERVICE [MESSAGE]",
		Description: `push sends MESSAGE (or the --file, or each line of stdin) to the pullers of
SERVICE, each message to one of them, load balanced. It waits for a puller
(at most --timeout per message: backpressure), lingers after the last message
so that queued messages reach the wire, and leaves.

At most once: a message in flight when its puller dies is lost. A SERVICE
with no puller in the mesh (after --wait) exits with 4; no puller taking a
message within --timeout exits with 5.

With --dial/--listen and no mesh, give no SERVICE: MESSAGE comes first.

--bare sends bare SP frames (no spmesh envelope), so push can feed an NNG or
nanomsg PULL program (nngcat --pull, pynng): each message is exactly its
bytes (as --codec raw), one frame each. A bare socket loses what the
envelope carries: headers (--header is refused) and message ids. With a mesh
it dials only bare pullers (pull --bare). Both ends must be bare.`,
		Flags: flags(meshFlags(), addrFlags(), bodyFlags(), []cli.Flag{
			&cli.DurationFlag{Name: flagTimeout, Aliases: []string{"t"}, Value: 10 * time.Second,
				Usage: "give up when a message cannot be queued for a puller within this long"},
			lingerFlag(),
		}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			s, service, args, err := openPattern(ctx, cmd)
			if err != nil {
				return err
			}
			defer s.close()
			if err := s.waitService(ctx, service, spmesh.RolePuller); err != nil {
				return err
			}
			opts := append([]pipeline.Option{pipeline.WithCodec(s.codec)}, s.pipelineBare()...)
			opts = append(opts, wiring(s, service, pipeline.WithDiscovery, pipeline.WithListen, pipeline.WithDial, pipeline.WithTLS, pipeline.WithRequireTLS)...)
			p, err := pipeline.NewPusher(opts...)
			if err != nil {
				return err
			}
			defer p.Close()
			enc := encoder{codec: s.codec, asString: cmd.Bool(flagString)}
			timeout := cmd.Duration(flagTimeout)
			pushed := uint64(0)
			err = messages(cmd, args, enc, func(v any) error {
				pctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				err := p.PushHeader(pctx, s.header, v)
				if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
					return withCode(exitNoAnswer, fmt.Errorf("nobody answered: no puller took the message within %v%s", timeout, notConnected(p.Stats())))
				}
				if err == nil {
					pushed++
				}
				return err
			})
			if err != nil {
				return err
			}
			// Wait until the pusher has handed everything to the transport,
			// then linger for the transport to write it.
			s.waitFor(ctx, func() bool { return p.Stats().Sent >= pushed })
			s.logf("pushed %d messages", p.Stats().Sent)
			return linger(ctx, cmd.Duration(flagLinger))
		},
	}
}

func pullCommand() *cli.Command {
	return &cli.Command{
		Name:      "pull",
		Usage:     "take a service's pushed messages and print them",
		ArgsUsage: "SERVICE",
		Description: `pull advertises itself as a puller of SERVICE and prints every message pushed
to it (its share of the load) until interrupted, or until --count messages:
id, headers, body (msgpack as JSON, raw as text or hex).

With --dial/--listen and no mesh, give no SERVICE.

--bare takes bare SP frames (no spmesh envelope), so pull can take what an
NNG or nanomsg PUSH program sends (nngcat --push, pynng): each frame is one
message, printed as it came (as --codec raw), with no id or headers (--json
prints the body alone). With a mesh it is advertised as a bare puller, and
only bare pushers (push --bare) dial it. Both ends must be bare.`,
		Flags: flags(meshFlags(), addrFlags(), []cli.Flag{
			&cli.IntFlag{Name: flagCount, Aliases: []string{"n"}, Usage: "exit after this many messages (0: until interrupted)"},
		}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			s, service, err := openService(ctx, cmd)
			if err != nil {
				return err
			}
			defer s.close()
			opts := append([]pipeline.Option{pipeline.WithCodec(s.codec)}, s.pipelineBare()...)
			opts = append(opts, wiring(s, service, pipeline.WithDiscovery, pipeline.WithListen, pipeline.WithDial, pipeline.WithTLS, pipeline.WithRequireTLS)...)
			pl, err := pipeline.NewPuller(opts...)
			if err != nil {
				return err
			}
			defer pl.Close()
			s.logf("pulling %s", orDefault(service, "messages"))
			return printAll(ctx, cmd, pl.Next, func(m *pipeline.Message) error {
				if s.bare {
					return s.printBare(m.Data)
				}
				o := map[string]any{"id": m.ID, "time": m.Time.Format(time.RFC3339Nano)}
				return s.printReceived(o, m.ID.String(), m.Header, m.Data)
			})
		},
	}
}

// pipelineBare is pipeline.WithBareFrames with --bare, else nothing.
func (s *session) pipelineBare() []pipeline.Option {
	if s.bare {
		return []pipeline.Option{pipeline.WithBareFrames()}
	}
	return nil
}

// printBare prints a bare message: its body alone (no id, time or
// headers to show).
func (s *session) printBare(data []byte) error {
	if s.json {
		return s.printReceived(map[string]any{}, "", nil, data)
	}
	_, err := fmt.Fprintln(s.stdout, decodeBody(s.codec, data).String())
	return err
}
