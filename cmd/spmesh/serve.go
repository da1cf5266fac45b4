package main

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/urfave/cli/v3"
)

// serving is the shared state of the serving commands (reply, respond):
// the answerer, output under a lock, and the --count of requests after
// which they stop.
type serving struct {
	s     *session
	ans   *answerer
	quiet bool
	mu    sync.Mutex
	left  int // requests still to answer; <= 0 with no --count
	count bool
	end   chan struct{}
}

// newServing reads the flags of a serving command (--data, --file,
// --command, --count, --quiet) for service.
func newServing(s *session, cmd *cli.Command, service string) (*serving, error) {
	ans, err := newAnswerer(cmd, s.codec, "SPMESH_SERVICE="+service)
	if err != nil {
		return nil, err
	}
	count := cmd.Int(flagCount)
	return &serving{s: s, ans: ans, quiet: cmd.Bool(flagQuiet), left: count, count: count > 0, end: make(chan struct{})}, nil
}

// serveAction is the Action of a serving command (reply, respond): run
// gets the serving state of the session it opens (srv.s), closed when run
// returns, and the SERVICE argument.
func serveAction(run func(ctx context.Context, cmd *cli.Command, srv *serving, service string) error) cli.ActionFunc {
	return func(ctx context.Context, cmd *cli.Command) error {
		s, service, err := openService(ctx, cmd)
		if err != nil {
			return err
		}
		defer s.close()
		srv, err := newServing(s, cmd, service)
		if err != nil {
			return err
		}
		return run(ctx, cmd, srv, service)
	}
}

// received prints and answers one request or survey question: kind names
// it ("request", "survey"), id and attempt (0: none) identify it. A bare
// session has neither, nor headers.
func (v *serving) received(ctx context.Context, kind string, id spmesh.ID, attempt int, h spmesh.Header, data []byte) (any, error) {
	envKind := strings.ToUpper(kind)
	if v.s.bare {
		return v.answer(ctx, request{fields: map[string]any{}, prefix: kind, data: data, env: requestEnv(envKind, "", 0, nil)})
	}
	r := request{
		fields: map[string]any{"id": id.String()},
		prefix: kind + " " + id.String(),
		header: h, data: data,
		env: requestEnv(envKind, id.String(), attempt, h),
	}
	if attempt > 0 {
		r.fields["attempt"] = attempt
		r.prefix += " attempt=" + strconv.Itoa(attempt)
	}
	return v.answer(ctx, r)
}

// request is a request (or a survey's question) as a serving command shows
// it and hands it to --command.
type request struct {
	fields map[string]any // its own fields in --json output
	prefix string         // what starts its line in text output
	header spmesh.Header
	data   []byte
	env    []string // what describes it to --command (see requestEnv)
}

// answer prints r (unless --quiet), answers it and counts it answered.
func (v *serving) answer(ctx context.Context, r request) (any, error) {
	if !v.quiet {
		v.mu.Lock()
		v.s.printReceived(r.fields, r.prefix, r.header, r.data)
		v.mu.Unlock()
	}
	defer v.done()
	return v.ans.answer(ctx, r.data, r.env)
}

// done counts one request answered.
func (v *serving) done() {
	if !v.count {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.left--
	if v.left == 0 {
		close(v.end)
	}
}

// serve returns when ctx ends or --count requests were answered, after
// drain has finished the requests in hand (for at most 5 seconds).
func (v *serving) serve(ctx context.Context, drain func(context.Context) error) error {
	select {
	case <-ctx.Done():
	case <-v.end:
	}
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	drain(dctx)
	return nil
}

// printAll prints what next returns until ctx ends (the normal end of sub
// and pull) or --count messages were printed.
func printAll[M any](ctx context.Context, cmd *cli.Command, next func(context.Context) (M, error), print func(M) error) error {
	count := cmd.Int(flagCount)
	for seen := 0; count <= 0 || seen < count; seen++ {
		m, err := next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := print(m); err != nil {
			return err
		}
	}
	return nil
}
