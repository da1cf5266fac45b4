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

const (
	flagOutbox     = "outbox"
	flagOutboxSync = "outbox-sync"
)

func produceCommand() *cli.Command {
	return &cli.Command{
		Name:      "produce",
		Usage:     "send at-least-once jobs to a service's workers and wait for their acks",
		ArgsUsage: "SERVICE [MESSAGE]",
		Description: `produce sends MESSAGE (or the --file, or each line of stdin) as a job to the
workers of SERVICE, each job to one of them, and waits until every job is
acked: a job a worker fails, does not ack within --ack-timeout, or loses is
sent again (duplicates possible; a job keeps its id).

With --outbox PATH, each job is written and fsynced to PATH before it is
sent, and removed once acked: jobs left there by a run that was killed,
interrupted or timed out are sent again first by the next run on PATH
(nothing else needed: give no MESSAGE and an empty stdin to just flush it).
Only one process can use PATH at a time. --outbox-sync INTERVAL trades the
host-crash guarantee for speed: a job is accepted once written (no fsync) and
the file is fsynced every INTERVAL and at exit; it survives the process being
killed, not a power loss (pipeline.WithOutboxSync).

Exits 5 when jobs are not all acked within --timeout (with --outbox they
stay in PATH), 4 when no worker advertises SERVICE (after --wait).

With --dial/--listen and no mesh, give no SERVICE: MESSAGE comes first.`,
		Flags: flags(meshFlags(), addrFlags(), bodyFlags(), []cli.Flag{
			&cli.StringFlag{Name: flagOutbox, Usage: "keep unacked jobs in this file (crash-safe; resent by the next run)"},
			&cli.DurationFlag{Name: flagOutboxSync,
				Usage: "with --outbox: fsync every `interval` instead of before each job is accepted (survives a killed process, not a power loss)"},
			&cli.DurationFlag{Name: flagTimeout, Aliases: []string{"t"}, Value: 30 * time.Second,
				Usage: "give up when the jobs are not all acked within this long"},
			&cli.DurationFlag{Name: "ack-timeout", Value: pipeline.DefaultAckTimeout,
				Usage: "send a job again when its worker has not acked it within this long"},
		}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			s, service, args, err := openPattern(ctx, cmd)
			if err != nil {
				return err
			}
			defer s.close()
			if err := s.waitService(ctx, service, spmesh.RoleWorker); err != nil {
				return err
			}
			opts := append([]pipeline.Option{pipeline.WithCodec(s.codec), pipeline.WithWaitForWorker(),
				pipeline.WithAckTimeout(cmd.Duration("ack-timeout"))},
				wiring(s, service, pipeline.WithDiscovery, pipeline.WithListen, pipeline.WithDial, pipeline.WithTLS, pipeline.WithRequireTLS)...)
			outbox := cmd.String(flagOutbox)
			if outbox != "" {
				opts = append(opts, pipeline.WithOutbox(outbox))
			}
			if cmd.IsSet(flagOutboxSync) {
				if outbox == "" {
					return usagef("--%s needs --%s", flagOutboxSync, flagOutbox)
				}
				opts = append(opts, pipeline.WithOutboxSync(cmd.Duration(flagOutboxSync)))
			}
			p, err := pipeline.NewProducer(opts...)
			if err != nil {
				return err
			}
			defer p.Close()
			if n := p.Stats().Recovered; n > 0 {
				s.logf("sending %d jobs left in the outbox %s first", n, outbox)
			}
			// Jobs live until acked or the producer closes (interrupt,
			// timeout): closing keeps them in the outbox, while a job
			// whose own ctx ended would be removed from it as abandoned.
			stop := context.AfterFunc(ctx, func() { p.Close() })
			defer stop()
			wctx, cancel := context.WithTimeout(ctx, cmd.Duration(flagTimeout))
			defer cancel()
			enc := encoder{codec: s.codec, asString: cmd.Bool(flagString)}
			var rs []*pipeline.Result
			err = messages(cmd, args, enc, func(v any) error {
				r, err := p.Submit(context.Background(), pipeline.Task{Header: s.header, Body: v})
				if err == nil {
					rs = append(rs, r)
				}
				return err
			})
			if err != nil {
				return interrupted(ctx, err)
			}
			acked := 0
			wait := func() error {
				for _, r := range rs {
					select {
					case <-r.Done():
					case <-wctx.Done():
						if ctx.Err() != nil {
							return ctx.Err()
						}
						return withCode(exitNoAnswer, fmt.Errorf("nobody answered: %d of %d jobs not acked within %v%s%s",
							len(rs)-acked, len(rs), cmd.Duration(flagTimeout), notConnectedWorkers(p), kept(outbox)))
					}
					if err := r.Err(); err != nil {
						return fmt.Errorf("job %s: %w%s", r.ID(), err, kept(outbox))
					}
					acked++
				}
				return nil
			}
			if err := wait(); err != nil {
				return interrupted(ctx, err)
			}
			// The recovered jobs, whose Results belong to no one: Drain
			// waits for them.
			if err := p.Drain(wctx); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return interrupted(ctx, withCode(exitNoAnswer, fmt.Errorf("jobs left in the outbox not acked: %w%s", err, kept(outbox))))
			}
			s.logf("produced %d jobs, all acked (%d recovered)", len(rs), p.Stats().Recovered)
			return nil
		},
	}
}

func notConnectedWorkers(p *pipeline.Producer) string {
	if p.Stats().Peers == 0 {
		return " (no worker connected)"
	}
	return ""
}

func kept(outbox string) string {
	if outbox == "" {
		return ""
	}
	return "; unacked jobs stay in the outbox " + outbox + ", sent again by the next run on it"
}

// interrupted prefers ctx's end to err when ctx ended (SIGINT closes the
// producer, and every job then fails with ErrClosed).
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, spmesh.ErrClosed) {
		return ctx.Err()
	}
	return err
}
