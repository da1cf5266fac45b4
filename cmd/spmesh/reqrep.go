package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/reqrep"
	"github.com/urfave/cli/v3"
)

const flagTimeout = "timeout"

func reqCommand() *cli.Command {
	return &cli.Command{
		Name:      "req",
		Usage:     "send a request to a service and print the reply (or the remote error)",
		ArgsUsage: "SERVICE [MESSAGE]",
		Description: `req sends MESSAGE (or the --file, or each line of stdin, one request per
line) to one replier of SERVICE and prints the reply's body: msgpack as JSON,
raw as text or hex. With --json it prints {"body", "header", "attempt", "id"}.

A request is resent when its connection drops (at least once), and fails
after --timeout. When the replier's handler returns an error, req prints it
(with its code) and exits with 6. A SERVICE nobody advertises (after --wait)
exits with 4, a request nobody answers in time with 5.

With --dial/--listen and no mesh, give no SERVICE: MESSAGE comes first.`,
		Flags: flags(meshFlags(), addrFlags(), bodyFlags(), []cli.Flag{
			&cli.DurationFlag{Name: flagTimeout, Aliases: []string{"t"}, Value: 10 * time.Second,
				Usage: "give up on a request after this long (the deadline travels to the replier)"},
		}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			s, err := newSession(cmd)
			if err != nil {
				return err
			}
			h, err := headers(cmd)
			if err != nil {
				return err
			}
			if err := s.needWiring(ctx); err != nil {
				return err
			}
			defer s.close()
			service, args, err := s.serviceArg(cmd.Args().Slice())
			if err != nil {
				return err
			}
			opts := []reqrep.Option{reqrep.WithCodec(s.codec), reqrep.WithWaitForReplier()}
			if s.node != nil {
				if _, err := s.waitService(ctx, service, spmesh.RoleReplier); err != nil {
					return err
				}
				opts = append(opts, reqrep.WithDiscovery(s.node, service))
			}
			for _, a := range s.listen {
				opts = append(opts, reqrep.WithListen(a))
			}
			for _, a := range s.dial {
				opts = append(opts, reqrep.WithDial(a))
			}
			r, err := reqrep.NewRequester(opts...)
			if err != nil {
				return err
			}
			defer r.Close()
			s.logf("sending requests to %s", orDefault(service, "the replier"))
			enc := encoder{codec: s.codec, asString: cmd.Bool(flagString)}
			timeout := cmd.Duration(flagTimeout)
			return messages(cmd, args, enc, func(v any) error {
				rctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				rep, err := r.Do(rctx, &reqrep.Call{Header: h, Body: v})
				var re *spmesh.RemoteError
				switch {
				case errors.As(err, &re):
					if s.json {
						o := map[string]any{"error": re.Message, "code": re.Code}
						if rep != nil {
							o["id"], o["attempt"] = rep.ID.String(), rep.Attempt
							if len(rep.Header) > 0 {
								o["header"] = rep.Header
							}
						}
						printJSON(s.stdout, o)
						return withCode(exitRemoteError, errReported)
					}
					return err
				case err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
					what := "the replier"
					if service != "" {
						what = "a replier of " + service
					}
					return withCode(exitNoAnswer, fmt.Errorf("nobody answered: no reply from %s within %v", what, timeout))
				case err != nil:
					return err
				}
				return s.printReply(rep)
			})
		},
	}
}

func (s *session) printReply(rep *reqrep.Reply) error {
	b := decodeBody(s.codec, rep.Data)
	if s.json {
		o := map[string]any{"id": rep.ID.String(), "attempt": rep.Attempt}
		if len(rep.Header) > 0 {
			o["header"] = rep.Header
		}
		b.fields(o)
		return printJSON(s.stdout, o)
	}
	if h := headerText(rep.Header); h != "" {
		s.logf("reply header %s", h)
	}
	_, err := fmt.Fprintln(s.stdout, b.String())
	return err
}

func replyCommand() *cli.Command {
	return &cli.Command{
		Name:      "reply",
		Usage:     "serve a service: answer its requests with fixed data, a shell command, or an echo",
		ArgsUsage: "SERVICE",
		Description: `reply advertises itself as a replier of SERVICE and answers every request:
with --data (or --file), with the output of --command run once per request,
or, with neither, with the request itself (echo). It prints each request it
answers (-q: not) until interrupted, or until --count requests are answered,
then finishes the requests in hand and leaves the mesh.

--command runs "sh -c COMMAND" with the request body on stdin (as JSON for
msgpack, as bytes for raw) and SPMESH_REQUEST_ID, SPMESH_ATTEMPT and
SPMESH_HEADER_<KEY> in its environment; its stdout is the reply (msgpack:
parsed as JSON when it can be, else a string). A non-zero exit status is
returned to the caller as a remote error whose code is the status and whose
message is the command's stderr. The command is killed at the request's
deadline.`,
		Flags: flags(meshFlags(), addrFlags(), answerFlags()),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			s, err := newSession(cmd)
			if err != nil {
				return err
			}
			if err := s.needWiring(ctx); err != nil {
				return err
			}
			defer s.close()
			service, rest, err := s.serviceArg(cmd.Args().Slice())
			if err != nil {
				return err
			}
			if len(rest) > 0 {
				return usagef("too many arguments: %q", rest)
			}
			ans, err := newAnswerer(cmd, s.codec, "SPMESH_SERVICE="+service)
			if err != nil {
				return err
			}
			srv := newServing(s, cmd.Int(flagCount), cmd.Bool(flagQuiet))
			h := reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
				srv.print(map[string]any{"id": req.ID.String(), "attempt": req.Attempt}, req.Header, req.Data,
					fmt.Sprintf("request %s attempt=%d", req.ID, req.Attempt))
				defer srv.done()
				return ans.answer(ctx, req.Data, requestEnv("REQUEST", req.ID.String(), req.Attempt, req.Header))
			})
			opts := []reqrep.Option{reqrep.WithCodec(s.codec), reqrep.WithConcurrency(max(cmd.Int(flagConcurrency), 1))}
			if s.node != nil {
				opts = append(opts, reqrep.WithDiscovery(s.node, service))
			}
			for _, a := range s.listen {
				opts = append(opts, reqrep.WithListen(a))
			}
			for _, a := range s.dial {
				opts = append(opts, reqrep.WithDial(a))
			}
			r, err := reqrep.NewReplier(h, opts...)
			if err != nil {
				return err
			}
			defer r.Close()
			s.logf("serving %s at %s", orDefault(service, "requests"), strings.Join(r.Addrs(), " "))
			srv.wait(ctx)
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r.Drain(dctx)
			return nil
		},
	}
}

// orDefault names a service in progress lines, or says what is served
// without one.
func orDefault(service, dflt string) string {
	if service == "" {
		return dflt
	}
	return service
}

// serving is the shared loop state of the serving commands: output under a
// lock, and the --count of requests after which they stop.
type serving struct {
	s     *session
	quiet bool
	mu    sync.Mutex
	left  int // requests still to answer; <= 0 with no --count
	count bool
	end   chan struct{}
}

func newServing(s *session, count int, quiet bool) *serving {
	return &serving{s: s, quiet: quiet, left: count, count: count > 0, end: make(chan struct{})}
}

// print prints a request (text: prefix, headers, body; JSON: o plus header
// and body fields).
func (v *serving) print(o map[string]any, h spmesh.Header, data []byte, prefix string) {
	if v.quiet {
		return
	}
	b := decodeBody(v.s.codec, data)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.s.json {
		if len(h) > 0 {
			o["header"] = h
		}
		b.fields(o)
		printJSON(v.s.stdout, o)
		return
	}
	line := prefix
	if ht := headerText(h); ht != "" {
		line += " " + ht
	}
	fmt.Fprintln(v.s.stdout, line+" "+b.String())
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

// wait returns when ctx ends or --count requests were answered.
func (v *serving) wait(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-v.end:
	}
}
