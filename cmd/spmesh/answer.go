package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/urfave/cli/v3"
	"github.com/vmihailenco/msgpack/v5"
)

// Flags of the serving commands (reply, respond).
const (
	flagData        = "data"
	flagCommand     = "command"
	flagCount       = "count"
	flagConcurrency = "concurrency"
	flagQuiet       = "quiet"
)

func answerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagData, Aliases: []string{"d"}, Category: "answer",
			Usage: "answer every request with this `message` (JSON or text, as for sending)"},
		&cli.StringFlag{Name: flagFile, Category: "answer", TakesFile: true,
			Usage: "answer every request with the content of `file`"},
		&cli.StringFlag{Name: flagCommand, Aliases: []string{"c"}, Category: "answer",
			Usage: "answer by running this shell `command` (sh -c) per request: the request on its stdin " +
				"(JSON for msgpack, bytes for raw), its stdout the answer; a non-zero exit is an error answer " +
				"with the exit status as code and stderr as message"},
		&cli.BoolFlag{Name: flagString, Category: "answer",
			Usage: "msgpack codec: answer with a string even when the answer parses as JSON"},
		&cli.IntFlag{Name: flagConcurrency, Category: "answer", Value: 1,
			Usage: "handle this many requests at once"},
		&cli.IntFlag{Name: flagCount, Aliases: []string{"n"}, Category: "answer",
			Usage: "exit after answering this many (0: until interrupted)"},
		&cli.BoolFlag{Name: flagQuiet, Aliases: []string{"q"}, Category: "output",
			Usage: "do not print the requests answered"},
	}
}

// answerer computes the answer of a serving command: a fixed message, the
// output of a shell command, or (by default) the request echoed back.
type answerer struct {
	enc     encoder
	fixed   any
	hasData bool
	command string
	env     []string // extra environment for the command
}

func newAnswerer(cmd *cli.Command, codec spmesh.Codec, env ...string) (*answerer, error) {
	a := &answerer{enc: encoder{codec: codec, asString: cmd.Bool(flagString)}, command: cmd.String(flagCommand), env: env}
	n := 0
	if cmd.IsSet(flagData) {
		n++
		v, err := a.enc.value([]byte(cmd.String(flagData)))
		if err != nil {
			return nil, err
		}
		a.fixed, a.hasData = v, true
	}
	if f := cmd.String(flagFile); f != "" {
		n++
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		v, err := a.enc.value(b)
		if err != nil {
			return nil, err
		}
		a.fixed, a.hasData = v, true
	}
	if a.command != "" {
		n++
	}
	if n > 1 {
		return nil, usagef("give one of --data, --file and --command")
	}
	return a, nil
}

// answer returns the answer to a request whose body is data (encoded with
// the codec); env describes the request to a command (NAME=value).
func (a *answerer) answer(ctx context.Context, data []byte, env []string) (any, error) {
	switch {
	case a.hasData:
		return a.fixed, nil
	case a.command != "":
		return a.run(ctx, data, env)
	}
	// Echo: hand the body back as it came, without re-encoding.
	return a.encoded(data), nil
}

// encoded wraps an already encoded body so that the codec sends it as it
// is: msgpack.RawMessage for msgpack, bytes for raw.
func (a *answerer) encoded(data []byte) any {
	if a.enc.codec.Name() == "msgpack" {
		if len(data) == 0 {
			return nil
		}
		return msgpack.RawMessage(bytes.Clone(data))
	}
	return bytes.Clone(data)
}

// run runs the shell command with the request on its stdin.
func (a *answerer) run(ctx context.Context, data []byte, env []string) (any, error) {
	c := exec.CommandContext(ctx, "sh", "-c", a.command)
	c.Env = append(append(os.Environ(), a.env...), env...)
	in := data
	if a.enc.codec.Name() == "msgpack" {
		in = append([]byte(decodeBody(a.enc.codec, data).String()), '\n')
	}
	c.Stdin = bytes.NewReader(in)
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	c.WaitDelay = time.Second
	err := c.Run()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		code := 1
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() > 0 {
			code = ee.ExitCode()
		}
		msg := strings.TrimSpace(errOut.String())
		if msg == "" {
			msg = fmt.Sprintf("command %q: %v", a.command, err)
		}
		return nil, spmesh.Errorf(code, "%s", msg)
	}
	if a.enc.codec.Name() == "raw" {
		return out.Bytes(), nil
	}
	return a.enc.value(bytes.TrimRight(out.Bytes(), "\r\n"))
}

// requestEnv describes a request to a command.
func requestEnv(kind, id string, attempt int, h spmesh.Header) []string {
	env := []string{"SPMESH_" + kind + "_ID=" + id}
	if attempt > 0 {
		env = append(env, "SPMESH_ATTEMPT="+strconv.Itoa(attempt))
	}
	for k, v := range h {
		env = append(env, "SPMESH_HEADER_"+envName(k)+"="+v)
	}
	return env
}

// envName turns a header key into an environment variable name suffix.
func envName(k string) string {
	b := []byte(strings.ToUpper(k))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}
