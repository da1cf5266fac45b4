package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/survey"
	"github.com/urfave/cli/v3"
)

const (
	flagExpect      = "expect"
	flagRespondents = "respondents"
)

func surveyCommand() *cli.Command {
	return &cli.Command{
		Name:      "survey",
		Usage:     "ask every respondent of a service a question; print each answer and who did not answer",
		ArgsUsage: "SERVICE [QUESTION]",
		Description: `survey advertises itself as the surveyor of SERVICE, waits for respondents to
connect (until --respondents are, by default as many as --expect'ed, or
else until their number has been steady for a moment; at most --wait), sends QUESTION (or the --file; nil when
neither), and prints every answer until --timeout, or until every --expect'ed
respondent has answered: "FROM BODY", "FROM declined" or "FROM error ...".
Then it reports on stderr who did not answer: the --expect'ed respondents by
name (spmesh respond answers under its node name), else how many of the
connected respondents stayed silent. --json prints one document:
{"answers": [{"from", "body", "declined", "error", "code", "header"}],
 "missing": [...], "respondents": N}.

Exits with 5 when nobody answered or an --expect'ed respondent did not.

With --dial/--listen and no mesh, give no SERVICE: QUESTION comes first.

--bare sends a bare SP survey (no spmesh envelope), so that NNG and nanomsg
RESPONDENT programs (nngcat --respondent) answer it: QUESTION's bytes alone,
the answers printed as they came, each from its connection's address
("ADDRESS BODY"; bare answers carry no name). Lost: headers (refused),
--expect (refused: no names), the deadline, declines and error answers (a
bare respondent that fails sends nothing).`,
		Flags: flags(meshFlags(), addrFlags(), bodyFlags(), []cli.Flag{
			&cli.DurationFlag{Name: flagTimeout, Aliases: []string{"t"}, Value: survey.DefaultTimeout,
				Usage: "how long the survey collects answers"},
			&cli.StringSliceFlag{Name: flagExpect, Aliases: []string{"e"},
				Usage: "expect an answer from respondent `name` (repeatable): finish early when all answered, report the missing"},
			&cli.IntFlag{Name: flagRespondents, Aliases: []string{"r"},
				Usage: "wait (at most --wait) for this many respondents to connect before asking (default: the number of --expect'ed; without, until their number is steady)"},
		}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			s, service, args, err := openPattern(ctx, cmd)
			if err != nil {
				return err
			}
			defer s.close()
			question, err := oneMessage(cmd, args, encoder{codec: s.codec, asString: cmd.Bool(flagString)})
			if err != nil {
				return err
			}
			if s.bare && len(cmd.StringSlice(flagExpect)) > 0 {
				return usagef("--bare with --expect: bare answers carry no respondent name")
			}
			opts := append([]survey.Option{survey.WithCodec(s.codec)}, s.bareSurvey()...)
			opts = append(opts, wiring(s, service, survey.WithDiscovery, survey.WithListen, survey.WithDial, survey.WithTLS, survey.WithRequireTLS)...)
			sv, err := survey.NewSurveyor(opts...)
			if err != nil {
				return err
			}
			defer sv.Close()
			expect := cmd.StringSlice(flagExpect)
			want := len(expect)
			if cmd.IsSet(flagRespondents) {
				want = cmd.Int(flagRespondents)
			}
			if err := s.waitRespondents(ctx, sv, want); err != nil {
				return err
			}
			connected := sv.Stats().Peers
			s.logf("surveying %s: %d respondents connected", orDefault(service, "respondents"), connected)
			sopts := []survey.SurveyOption{survey.WithTimeout(cmd.Duration(flagTimeout))}
			if len(expect) > 0 {
				sopts = append(sopts, survey.WithExpect(expect...))
			}
			res, err := sv.SurveyHeader(ctx, s.header, question, sopts...)
			if err != nil {
				return err
			}
			defer res.Close()
			var answers []map[string]any
			for r, err := range res.All(ctx) {
				if err != nil {
					return err
				}
				o := map[string]any{"from": r.From}
				if len(r.Header) > 0 {
					o["header"] = r.Header
				}
				var re *spmesh.RemoteError
				switch {
				case r.Declined:
					o["declined"] = true
				case errors.As(r.Err, &re):
					o["error"], o["code"] = re.Message, re.Code
				default:
					decodeBody(s.codec, r.Data).fields(o)
				}
				answers = append(answers, o)
				if !s.json {
					fmt.Fprintln(s.stdout, answerText(s, r))
				}
			}
			missing := res.Missing()
			if s.json {
				if answers == nil {
					answers = []map[string]any{}
				}
				o := map[string]any{"answers": answers, "respondents": connected}
				if missing != nil {
					o["missing"] = missing
				}
				if err := printJSON(s.stdout, o); err != nil {
					return err
				}
			}
			switch {
			case len(missing) > 0:
				return withCode(exitNoAnswer, fmt.Errorf("nobody answered: no answer from %s", strings.Join(missing, ", ")))
			case len(answers) == 0:
				return withCode(exitNoAnswer, fmt.Errorf("nobody answered (%d respondents connected)", connected))
			case len(answers) < connected:
				s.warnf("%d of %d connected respondents did not answer", connected-len(answers), connected)
			}
			return nil
		},
	}
}

func answerText(s *session, r *survey.Response) string {
	line := r.From
	if ht := headerText(r.Header); ht != "" {
		line += " " + ht
	}
	var re *spmesh.RemoteError
	switch {
	case r.Declined:
		return line + " declined"
	case errors.As(r.Err, &re):
		return fmt.Sprintf("%s error (code %d): %s", line, re.Code, re.Message)
	}
	return line + " " + decodeBody(s.codec, r.Data).String()
}

// waitRespondents waits, at most --wait, for want respondents to connect;
// with want 0, until some are connected and their number has not changed
// for a moment.
func (s *session) waitRespondents(ctx context.Context, sv *survey.Surveyor, want int) error {
	const steady = 300 * time.Millisecond
	last, since := -1, time.Now()
	err := s.waitFor(ctx, func() bool {
		n := sv.Stats().Peers
		if want > 0 {
			return n >= want
		}
		if n != last {
			last, since = n, time.Now()
			return false
		}
		return n > 0 && time.Since(since) >= steady
	})
	if errors.Is(err, errWaited) {
		return nil
	}
	return err
}

// oneMessage is the single message of a command: its argument, --file, or
// nil.
func oneMessage(cmd *cli.Command, args []string, enc encoder) (any, error) {
	if len(args) > 1 {
		return nil, usagef("too many arguments: %q (quote the message)", args)
	}
	file := cmd.String(flagFile)
	switch {
	case file != "" && len(args) == 1:
		return nil, usagef("give the message as an argument or with --file, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		return enc.value(b)
	case len(args) == 1:
		return enc.value([]byte(args[0]))
	}
	if enc.codec.Name() == "raw" {
		return []byte(nil), nil
	}
	return nil, nil
}

func respondCommand() *cli.Command {
	return &cli.Command{
		Name:      "respond",
		Usage:     "answer a service's surveys with fixed data, a shell command, or an echo",
		ArgsUsage: "SERVICE",
		Description: `respond dials every surveyor of SERVICE and answers each survey: with --data
(or --file), with the output of --command run once per survey, or, with
neither, with the question itself (echo). Its answers carry its name: the
node's name (--name). It prints each question (-q: not) until interrupted,
or until --count surveys are answered, then finishes those in hand and
leaves the mesh.

--command works as for reply (the question on stdin, SPMESH_SURVEY_ID and
SPMESH_HEADER_<KEY> in the environment, stdout the answer, a non-zero exit
an error answer) and is killed at the survey's deadline.

With --dial/--listen and no mesh, give no SERVICE.

--bare answers bare SP surveys (no spmesh envelope), so that an NNG or
nanomsg SURVEYOR program (nngcat --surveyor) gets its answers: the question
is taken as its bytes, the answer sent as raw bytes. Lost: headers, the
survey's id and deadline (SPMESH_SURVEY_ID is empty; --command is not
killed at a deadline), the name, and error answers: a failing --command
sends no answer.`,
		Flags: flags(meshFlags(), addrFlags(), answerFlags()),
		Action: serveAction(func(ctx context.Context, cmd *cli.Command, srv *serving, service string) error {
			s := srv.s
			h := survey.HandlerFunc(func(ctx context.Context, q *survey.Question) (any, error) {
				return srv.received(ctx, "survey", q.ID, 0, q.Header, q.Data)
			})
			name := cmd.String(flagName)
			if name == "" && s.node != nil {
				name = s.node.Name()
			}
			opts := append([]survey.Option{survey.WithCodec(s.codec), survey.WithConcurrency(max(cmd.Int(flagConcurrency), 1))}, s.bareSurvey()...)
			if name != "" {
				opts = append(opts, survey.WithName(name))
			}
			opts = append(opts, wiring(s, service, survey.WithDiscovery, survey.WithListen, survey.WithDial, survey.WithTLS, survey.WithRequireTLS)...)
			r, err := survey.NewRespondent(h, opts...)
			if err != nil {
				return err
			}
			defer r.Close()
			s.logf("answering surveys of %s as %s", orDefault(service, "any surveyor"), r.Name())
			return srv.serve(ctx, r.Drain)
		}),
	}
}

// bareSurvey is survey.WithBareFrames with --bare, else nothing.
func (s *session) bareSurvey() []survey.Option {
	if s.bare {
		return []survey.Option{survey.WithBareFrames()}
	}
	return nil
}
