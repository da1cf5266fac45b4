package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spmesh/spmesh"
	"github.com/urfave/cli/v3"
)

// Exit codes, documented in the root command's help.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitNoJoin      = 3
	exitNoService   = 4
	exitNoAnswer    = 5
	exitRemoteError = 6
	exitInterrupted = 130
)

const exitCodesHelp = `EXIT CODES
   0    success
   1    any other error (bad message, I/O, the mesh went away)
   2    usage: unknown command or flag, missing argument
   3    cannot join: no seed answered (--join, SPMESH_JOIN), or the gossip port cannot be bound
   4    no such service: nobody in the mesh advertises the service (req, push; stats: no socket of it)
   5    nobody answered: no reply in time (req), no answer or an --expect'ed respondent missing (survey),
        no stats responder answered (stats, top)
   6    remote error: the replier's handler returned an error (req)
   130  interrupted by SIGINT/SIGTERM before the command finished (agent, watch, top, sub, pull,
        work, reply and respond run until interrupted: for them a signal is the normal end, exit 0)
`

// exitErr carries an exit code with an error.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitErr{code: code, err: err}
}

func usagef(format string, args ...any) error {
	return withCode(exitUsage, fmt.Errorf(format, args...))
}

// exitCode maps an error returned by a command to the process's exit code.
func exitCode(err error) int {
	var ee *exitErr
	var re *spmesh.RemoteError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &re):
		return exitRemoteError
	case errors.Is(err, spmesh.ErrInvalidOption):
		return exitUsage // a flag's value the library refused (e.g. plaintext with --require-tls)
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	}
	return exitError
}

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit code. SIGINT and
// SIGTERM cancel the command's context: the command stops, leaves the mesh,
// and returns; a second signal kills the process (the default action, back
// once the first has been taken).
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	root := newRoot(stdin, stdout, stderr)
	err := root.Run(ctx, args)
	code := exitCode(err)
	if err != nil && !errors.Is(err, errReported) {
		if code == exitInterrupted {
			fmt.Fprintln(stderr, "spmesh: interrupted")
		} else if msg := oneLine(err.Error()); strings.HasPrefix(msg, "spmesh:") {
			fmt.Fprintln(stderr, msg)
		} else {
			fmt.Fprintln(stderr, "spmesh:", msg)
		}
	}
	if code == exitUsage {
		fmt.Fprintln(stderr, "Run 'spmesh help' for usage.")
	}
	return code
}

// oneLine folds a multi-line error (memberlist lists its failures one per
// line) onto one line.
func oneLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimLeft(strings.TrimSpace(l), "* ")
	}
	return strings.Join(lines, " ")
}

// errReported marks an error whose message the command already printed.
var errReported = errors.New("reported")

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cli.Command {
	root := &cli.Command{
		Name:  "spmesh",
		Usage: "join an spmesh mesh and talk to it from a shell",
		Description: `Every command joins the mesh through --join (or SPMESH_JOIN) as a short-lived
member and leaves it on exit, or talks to fixed addresses with --dial/--listen.
Services are found by name: "spmesh req thumbnails '{\"id\":1}'" reaches a
replier of thumbnails wherever it runs.

Start a mesh from the shell with "spmesh agent --bind 127.0.0.1:7946", then
point the other commands at it with --join 127.0.0.1:7946.`,
		CustomRootCommandHelpTemplate: cli.RootCommandHelpTemplate + "\n" + exitCodesHelp,
		Reader:                        stdin,
		Writer:                        stdout,
		ErrWriter:                     stderr,
		HideVersion:                   true,
		UseShortOptionHandling:        true,
		ExitErrHandler:                func(context.Context, *cli.Command, error) {},
		OnUsageError:                  onUsageError,
		Commands: []*cli.Command{
			agentCommand(), membersCommand(), servicesCommand(), watchCommand(), statsCommand(), topCommand(),
			pubCommand(), subCommand(),
			reqCommand(), replyCommand(),
			pushCommand(), pullCommand(), produceCommand(), workCommand(),
			surveyCommand(), respondCommand(),
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.NArg() > 0 {
				return usagef("unknown command %q", cmd.Args().First())
			}
			return cli.ShowRootCommandHelp(cmd)
		},
	}
	for _, c := range root.Commands {
		c.OnUsageError = onUsageError
		c.CustomHelpTemplate = cli.CommandHelpTemplate + "\n" + exitCodesHelp
	}
	return root
}

func onUsageError(_ context.Context, _ *cli.Command, err error, _ bool) error {
	return withCode(exitUsage, err)
}
