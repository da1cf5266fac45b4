package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

With --dial/--listen and no mesh, give no SERVICE: MESSAGE comes first.

--bare sends bare SP frames (no spmesh envelope), so req can call an NNG or
nanomsg REP program (nngcat --rep, pynng): the request is exactly the bytes
of MESSAGE, the reply is printed as it came (as --codec raw). A bare socket
loses what the envelope carries: headers (--header is refused), the deadline
(--timeout is only local), remote errors (a failing bare replier sends
nothing: req times out, exit 5), and message ids and attempts (a resend
looks new to the replier, and --json prints no id). It keeps SP request ids,
resends on a lost connection, and load spreading. Both ends must be bare.`,
		Flags: flags(meshFlags(), addrFlags(), bodyFlags(), []cli.Flag{
			&cli.DurationFlag{Name: flagTimeout, Aliases: []string{"t"}, Value: 10 * time.Second,
				Usage: "give up on a request after this long (the deadline travels to the replier)"},
		}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			s, service, args, err := openPattern(ctx, cmd)
			if err != nil {
				return err
			}
			defer s.close()
			if err := s.waitService(ctx, service, spmesh.RoleReplier); err != nil {
				return err
			}
			opts := append([]reqrep.Option{reqrep.WithCodec(s.codec), reqrep.WithWaitForReplier()}, s.bareOption()...)
			opts = append(opts, wiring(s, service, reqrep.WithDiscovery, reqrep.WithListen, reqrep.WithDial, reqrep.WithTLS, reqrep.WithRequireTLS)...)
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
				rep, err := r.Do(rctx, &reqrep.Call{Header: s.header, Body: v})
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
					return withCode(exitNoAnswer, fmt.Errorf("nobody answered: no reply from %s within %v%s", what, timeout, notConnected(r.Stats().Stats)))
				case err != nil:
					return err
				}
				return s.printReply(rep)
			})
		},
	}
}

func (s *session) printReply(rep *reqrep.Reply) error {
	if s.json && s.bare {
		return s.printReceived(map[string]any{}, "", nil, rep.Data)
	}
	if s.json {
		return s.printReceived(map[string]any{"id": rep.ID.String(), "attempt": rep.Attempt}, "", rep.Header, rep.Data)
	}
	if h := headerText(rep.Header); h != "" {
		s.logf("reply header %s", h)
	}
	_, err := fmt.Fprintln(s.stdout, decodeBody(s.codec, rep.Data).String())
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
deadline.

--bare serves bare SP frames (no spmesh envelope), so an NNG or nanomsg REQ
program (nngcat --req, pynng) can call reply: the request is exactly its
bytes, the answer is sent as raw bytes (as --codec raw). A bare socket loses
what the envelope carries: headers, the caller's deadline (--command is not
killed at it), remote errors (a failing --command sends no reply: the
caller times out or resends), and message ids and attempts (requests are
printed without them, SPMESH_REQUEST_ID is empty, and a resend is answered
again). Both ends must be bare.`,
		Flags: flags(meshFlags(), addrFlags(), answerFlags()),
		Action: serveAction(func(ctx context.Context, cmd *cli.Command, srv *serving, service string) error {
			s := srv.s
			h := reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
				return srv.received(ctx, "request", req.ID, req.Attempt, req.Header, req.Data)
			})
			opts := append([]reqrep.Option{reqrep.WithCodec(s.codec), reqrep.WithConcurrency(max(cmd.Int(flagConcurrency), 1))}, s.bareOption()...)
			opts = append(opts, wiring(s, service, reqrep.WithDiscovery, reqrep.WithListen, reqrep.WithDial, reqrep.WithTLS, reqrep.WithRequireTLS)...)
			r, err := reqrep.NewReplier(h, opts...)
			if err != nil {
				return err
			}
			defer r.Close()
			s.logf("serving %s at %s", orDefault(service, "requests"), strings.Join(r.Addrs(), " "))
			return srv.serve(ctx, r.Drain)
		}),
	}
}

// bareOption is reqrep.WithBareFrames with --bare, else nothing.
func (s *session) bareOption() []reqrep.Option {
	if s.bare {
		return []reqrep.Option{reqrep.WithBareFrames()}
	}
	return nil
}

// orDefault names a service in progress lines, or says what is served
// without one.
func orDefault(service, dflt string) string {
	if service == "" {
		return dflt
	}
	return service
}
