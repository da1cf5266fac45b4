package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spmesh/spmesh"
	"github.com/spmesh/spmesh/discovery"
	"github.com/spmesh/spmesh/internal/testutil"
)

// TestPubSub: sub prints what pub publishes, from an argument (with a
// header) and from stdin lines, as text and as JSON.
func TestPubSub(t *testing.T) {
	t.Parallel()
	_, addr := seed(t)
	sub := start(t, "sub", "images.>", "-j", addr, "-v", "--count", "3")
	subJSON := start(t, "sub", "images.ready", "-j", addr, "-v", "--count", "1", "--json")
	sub.waitLine(sub.stderr, `subscribed to images\.> on service images`, waitReady)
	subJSON.waitLine(subJSON.stderr, `subscribed to images\.ready on service images`, waitReady)

	// Both subscribers connected before publishing; a generous linger so
	// that a loaded machine writes the messages before the process exits.
	pub1 := mustRun(t, 0, "", "pub", "images.ready", "-j", addr, "--subscribers", "2", "--wait", "20s", "--linger", "1s",
		"-H", "trace=abc", `{"path":"cat.jpg","size":42}`)
	// The JSON subscriber is done after one message; the other one is then
	// the only subscriber.
	if code := subJSON.wait(waitReady); code != 0 {
		t.Fatalf("got sub --json exit %d, want 0\n%s", code, subJSON)
	}
	pub2 := mustRun(t, 0, "one\ntwo words\n", "pub", "images.thumb", "-j", addr, "--wait", "20s", "--linger", "1s")
	for _, r := range []result{pub1, pub2} {
		if r.stderr != "" {
			t.Fatalf("got stderr %q, want none (subscribers connected before publishing)\n%s", r.stderr, r)
		}
	}

	if code := sub.wait(waitReady); code != 0 {
		t.Fatalf("got sub exit %d, want 0\n%s", code, sub)
	}
	want := []string{
		`^images\.ready pub=[0-9a-f]{16} seq=1 trace="abc" {"path":"cat.jpg","size":42}$`,
		`^images\.thumb pub=[0-9a-f]{16} seq=1 "one"$`,
		`^images\.thumb pub=[0-9a-f]{16} seq=2 "two words"$`,
	}
	for _, w := range want {
		sub.waitLine(sub.stdout, w, time.Second)
	}

	var m struct {
		Topic     string
		Publisher string
		Seq       uint64
		Header    map[string]string
		Body      map[string]any
	}
	line := subJSON.waitLine(subJSON.stdout, `^.+$`, time.Second)[0]
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("sub --json printed %q: %v", line, err)
	}
	if m.Topic != "images.ready" || m.Seq != 1 || m.Header["trace"] != "abc" || m.Body["path"] != "cat.jpg" || m.Body["size"] != 42.0 || len(m.Publisher) != 16 {
		t.Fatalf("got %+v, want topic images.ready, seq 1, header trace=abc, body path cat.jpg size 42", m)
	}
}

// TestReqReply: req gets the fixed --data reply, the output of a --command,
// and the remote error of a failing command (exit 6), as text and JSON.
func TestReqReply(t *testing.T) {
	t.Parallel()
	_, addr := seed(t)
	fixed := start(t, "reply", "fixed", "-j", addr, "-v", "--data", `{"ok":true}`)
	upper := start(t, "reply", "upper", "-j", addr, "-v", "--codec", "raw", "--command", "tr a-z A-Z")
	fail := start(t, "reply", "fail", "-j", addr, "-v", "--command", `cat >/dev/null; echo "disk full" >&2; exit 3`)
	for _, p := range []*proc{fixed, upper, fail} {
		p.waitLine(p.stderr, `serving \w+ at tcp://127\.0\.0\.1:\d+`, waitReady)
	}

	r := mustRun(t, 0, "", "req", "fixed", "-j", addr, "--wait", "20s", `{"x":1}`)
	if got, want := r.stdout, "{\"ok\":true}\n"; got != want {
		t.Fatalf("got reply %q, want %q\n%s", got, want, r)
	}
	fixed.waitLine(fixed.stdout, `^request [0-9a-f]{32} attempt=1 {"x":1}$`, time.Second)

	r = mustRun(t, 0, "", "req", "fixed", "-j", addr, "--wait", "20s", "--json", "hello")
	var rep struct {
		ID      string
		Attempt int
		Body    map[string]any
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("req --json printed %q: %v", r.stdout, err)
	}
	if rep.Body["ok"] != true || rep.Attempt != 1 || len(rep.ID) != 32 {
		t.Fatalf("got %+v, want body ok=true, attempt 1, a 32-digit id", rep)
	}

	r = mustRun(t, 0, "", "req", "upper", "-j", addr, "--wait", "20s", "--codec", "raw", "hello mesh")
	if got, want := r.stdout, "HELLO MESH\n"; got != want {
		t.Fatalf("got reply %q, want %q\n%s", got, want, r)
	}

	r = mustRun(t, exitRemoteError, "", "req", "fail", "-j", addr, "--wait", "20s", "x")
	if !strings.Contains(r.stderr, "remote error (code 3): disk full") {
		t.Fatalf("got stderr %q, want the remote error with code 3 and message %q", r.stderr, "disk full")
	}
	r = mustRun(t, exitRemoteError, "", "req", "fail", "-j", addr, "--wait", "20s", "--json", "x")
	var rerr struct {
		Error string
		Code  int
	}
	if err := json.Unmarshal([]byte(r.stdout), &rerr); err != nil || rerr.Error != "disk full" || rerr.Code != 3 {
		t.Fatalf("got %+v (%v) from %q, want error %q code 3", rerr, err, r.stdout, "disk full")
	}
}

// TestReqNoSuchService: a request to a service nobody serves exits with 4,
// one to a seed that does not answer with 3.
func TestReqNoSuchService(t *testing.T) {
	t.Parallel()
	_, addr := seed(t)
	r := mustRun(t, exitNoService, "", "req", "nobody", "-j", addr, "--wait", "200ms", "hello")
	if !strings.Contains(r.stderr, `no such service: nobody in the mesh advertises "nobody"`) {
		t.Fatalf("got stderr %q, want a no-such-service message", r.stderr)
	}
	mustRun(t, exitNoService, "", "push", "nobody", "-j", addr, "--wait", "200ms", "hello")

	dead := closedPort(t)
	r = mustRun(t, exitNoJoin, "", "req", "svc", "-j", dead, "hello")
	if !strings.Contains(r.stderr, "cannot join the mesh through "+dead) {
		t.Fatalf("got stderr %q, want a cannot-join message", r.stderr)
	}
}

// closedPort returns a loopback host:port nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

// TestUsage: usage errors exit with 2 and say what is wrong.
func TestUsage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"req", "svc", "hello"}, "nothing to talk to"},
		{[]string{"members"}, "no mesh to join"},
		{[]string{"pub"}, "missing TOPIC"},
		{[]string{"req", "--no-such-flag"}, "no-such-flag"},
		{[]string{"sub", ">", "-j", "127.0.0.1:1"}, ""}, // cannot join first: exit 3
		{[]string{"req", "--codec", "json", "--dial", "tcp://127.0.0.1:1", "x"}, `--codec "json"`},
	} {
		r := runCLI(t, "", c.args...)
		want := exitUsage
		if c.want == "" {
			want = exitNoJoin
		}
		if r.code != want || !strings.Contains(r.stderr, c.want) {
			t.Errorf("got exit %d, stderr %q; want exit %d and %q\n%s", r.code, r.stderr, want, c.want, r)
		}
	}
}

// TestSurveyRespond: survey prints the answers of the expected respondents
// and finishes early; an expected respondent that does not answer is
// reported and exits with 5.
func TestSurveyRespond(t *testing.T) {
	t.Parallel()
	_, addr := seed(t)
	r1 := start(t, "respond", "health", "-j", addr, "-v", "--name", "r1", "--data", `{"load":0.5}`)
	r2 := start(t, "respond", "health", "-j", addr, "-v", "--name", "r2", "--command", `echo "{\"got\": $(cat)}"`)
	r1.waitLine(r1.stderr, `answering surveys of health as r1`, waitReady)
	r2.waitLine(r2.stderr, `answering surveys of health as r2`, waitReady)

	// A long timeout: the survey must end as soon as both have answered.
	r := mustRun(t, 0, "", "survey", "health", "-j", addr, "-e", "r1", "-e", "r2",
		"--wait", "20s", "--timeout", "1m", "--json", `"ping"`)
	var res struct {
		Answers []struct {
			From string
			Body any
		}
		Missing     []string
		Respondents int
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("survey --json printed %q: %v", r.stdout, err)
	}
	got := map[string]string{}
	for _, a := range res.Answers {
		b, _ := json.Marshal(a.Body)
		got[a.From] = string(b)
	}
	want := map[string]string{"r1": `{"load":0.5}`, "r2": `{"got":"ping"}`}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(res.Missing) != 0 || res.Respondents != 2 {
		t.Fatalf("got answers %v, missing %v, %d respondents; want %v, none missing, 2", got, res.Missing, res.Respondents, want)
	}
	r2.waitLine(r2.stdout, `^survey [0-9a-f]+ "ping"$`, time.Second)

	r = mustRun(t, exitNoAnswer, "", "survey", "health", "-j", addr, "-e", "r1", "-e", "r2", "-e", "ghost",
		"--respondents", "2", "--wait", "20s", "--timeout", "500ms")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	slices.Sort(lines)
	if want := []string{`r1 {"load":0.5}`, `r2 {"got":null}`}; !slices.Equal(lines, want) {
		t.Fatalf("got answers %q, want %q\n%s", lines, want, r)
	}
	if !strings.Contains(r.stderr, "no answer from ghost") {
		t.Fatalf("got stderr %q, want ghost reported missing", r.stderr)
	}
}

// TestPushPull: pull prints what push sends from stdin lines.
func TestPushPull(t *testing.T) {
	t.Parallel()
	_, addr := seed(t)
	pull := start(t, "pull", "jobs", "-j", addr, "-v", "--count", "2")
	pull.waitLine(pull.stderr, `pulling jobs`, waitReady)
	mustRun(t, 0, "job 1\n{\"n\":2}\n", "push", "jobs", "-j", addr, "--wait", "20s", "--linger", "1s", "-H", "k=v")
	if code := pull.wait(waitReady); code != 0 {
		t.Fatalf("got pull exit %d, want 0\n%s", code, pull)
	}
	pull.waitLine(pull.stdout, `^[0-9a-f]+ k="v" "job 1"$`, time.Second)
	pull.waitLine(pull.stdout, `^[0-9a-f]+ k="v" {"n":2}$`, time.Second)
}

// TestMembers: members and services list a node and its services, as text
// and JSON; watch shows it join with its service.
func TestMembers(t *testing.T) {
	t.Parallel()
	ep := spmesh.Endpoint{Service: "thumbnails", Role: spmesh.RoleReplier, Addr: "tcp://127.0.0.1:9"}
	node, addr := seed(t, ep)

	r := mustRun(t, 0, "", "members", "-j", addr)
	want := fmt.Sprintf(`(?m)^%s\s+%s\s+alive\s+thumbnails/rep@tcp://127\.0\.0\.1:9$`, node.Name(), addr)
	if !regexpMatch(want, r.stdout) {
		t.Fatalf("got members\n%s\nwant a line matching %s", r.stdout, want)
	}

	r = mustRun(t, 0, "", "members", "-j", addr, "--json")
	var ms []struct {
		Name, Addr, State string
		Services          []struct{ Service, Role, Addr string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &ms); err != nil {
		t.Fatalf("members --json printed %q: %v", r.stdout, err)
	}
	if len(ms) != 1 || ms[0].Name != node.Name() || ms[0].Addr != addr || ms[0].State != "alive" ||
		len(ms[0].Services) != 1 || ms[0].Services[0].Service != "thumbnails" || ms[0].Services[0].Role != "rep" || ms[0].Services[0].Addr != ep.Addr {
		t.Fatalf("got %+v, want the seed %s at %s, alive, with thumbnails/rep@%s", ms, node.Name(), addr, ep.Addr)
	}

	r = mustRun(t, 0, "", "services", "-j", addr, "--json")
	var svcs []struct {
		Service   string
		Endpoints []struct{ Role, Node, Addr string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &svcs); err != nil {
		t.Fatalf("services --json printed %q: %v", r.stdout, err)
	}
	if len(svcs) != 1 || svcs[0].Service != "thumbnails" || len(svcs[0].Endpoints) != 1 || svcs[0].Endpoints[0].Node != node.Name() {
		t.Fatalf("got %+v, want thumbnails served by %s", svcs, node.Name())
	}
	mustRun(t, exitNoService, "", "services", "-j", addr, "nothing")

	r = mustRun(t, 0, "", "watch", "-j", addr, "--json", "-n", "2")
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var ev struct{ Type, Node, Service string }
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("watch --json printed %q: %v", line, err)
		}
		if ev.Node != node.Name() {
			t.Fatalf("got an event of %q, want only %q's\n%s", ev.Node, node.Name(), r)
		}
		types = append(types, ev.Type+":"+ev.Service)
	}
	slices.Sort(types)
	if want := []string{"join:", "service-added:thumbnails"}; !slices.Equal(types, want) {
		t.Fatalf("got events %v, want %v", types, want)
	}
}

// TestAgent: a mesh started from the CLI alone, an agent as its seed.
func TestAgent(t *testing.T) {
	t.Parallel()
	agent := start(t, "agent", "--bind", "127.0.0.1:0", "--name", "agent-1")
	addr := agent.waitLine(agent.stdout, `^agent-1 (127\.0\.0\.1:\d+)$`, waitReady)[1]
	rep := start(t, "reply", "echo", "-j", addr, "-v", "--name", "replier-1")
	rep.waitLine(rep.stderr, `serving echo`, waitReady)
	r := mustRun(t, 0, "", "req", "echo", "-j", addr, "--wait", "20s", `[1,"two",{"three":3}]`)
	if got, want := r.stdout, "[1,\"two\",{\"three\":3}]\n"; got != want {
		t.Fatalf("got echo %q, want %q", got, want)
	}
	r = mustRun(t, 0, "", "members", "-j", addr)
	for _, name := range []string{"agent-1", "replier-1"} {
		if !regexpMatch(`(?m)^`+name+` `, r.stdout) {
			t.Fatalf("got members\n%s\nwant %s listed", r.stdout, name)
		}
	}
}

// TestDialListen: commands wired by address, with no mesh.
func TestDialListen(t *testing.T) {
	t.Parallel()
	a := testutil.FreeTCP(t)
	rep := start(t, "reply", "--listen", a, "-v", "--data", "pong")
	rep.waitLine(rep.stderr, `serving requests at `+a, waitReady)
	r := mustRun(t, 0, "", "req", "--dial", a, "ping")
	if got, want := r.stdout, "\"pong\"\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	rep.waitLine(rep.stdout, `^request [0-9a-f]+ attempt=1 "ping"$`, time.Second)

	b := testutil.FreeTCP(t)
	mustRun(t, exitNoAnswer, "", "req", "--dial", b, "--timeout", "300ms", "ping")

	// Interrupted while waiting for a replier: exit 130.
	req := start(t, "req", "--dial", b, "--timeout", "1m", "-v", "ping")
	req.waitLine(req.stderr, `sending requests to the replier`, waitReady)
	req.signal(syscall.SIGINT)
	if code := req.wait(waitReady); code != exitInterrupted {
		t.Fatalf("got exit %d after SIGINT, want %d\n%s", code, exitInterrupted, req)
	}
}

// TestLeaveOnSignal: SIGINT makes a serving command leave the mesh
// gracefully (the seed sees it leave, not fail) and exit 0.
func TestLeaveOnSignal(t *testing.T) {
	t.Parallel()
	node, addr := seed(t)
	rep := start(t, "reply", "svc", "-j", addr, "-v", "--name", "leaver")
	rep.waitLine(rep.stderr, `serving svc`, waitReady)
	testutil.Eventually(t, waitReady, func() error {
		if eps := node.Endpoints("svc", spmesh.RoleReplier); len(eps) != 1 {
			return fmt.Errorf("got %d endpoints of svc at the seed, want 1", len(eps))
		}
		return nil
	})
	rep.signal(syscall.SIGINT)
	if code := rep.wait(waitReady); code != 0 {
		t.Fatalf("got exit %d after SIGINT, want 0\n%s", code, rep)
	}
	rep.waitLine(rep.stderr, `left the mesh`, time.Second)
	deadline := time.After(waitReady)
	for {
		select {
		case ev := <-node.Events():
			if ev.Node != "leaver" {
				continue
			}
			switch ev.Type {
			case discovery.EventLeave:
				return
			case discovery.EventFailed:
				t.Fatalf("got %v for the interrupted command, want %v", ev.Type, discovery.EventLeave)
			}
		case <-deadline:
			t.Fatalf("the seed saw no leave event within %v", waitReady)
		}
	}
}

// TestKeyAndLabel: an encrypted, labelled mesh is joined with the key and
// label from the environment (SPMESH_JOIN comma separated), and refuses a
// wrong key or label (exit 3).
func TestKeyAndLabel(t *testing.T) {
	t.Parallel()
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	other := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210"))
	agent := start(t, "agent", "--bind", "127.0.0.1:0", "--name", "agent-k", "--key", key, "--label", "prod")
	addr := agent.waitLine(agent.stdout, `^agent-k (127\.0\.0\.1:\d+)$`, waitReady)[1]
	env := func(key, label string) []string {
		return []string{"SPMESH_JOIN=" + addr + "," + closedPort(t), "SPMESH_KEY=" + key, "SPMESH_LABEL=" + label}
	}
	r := mustRunEnv(t, 0, env(key, "prod"), "members")
	if !regexpMatch(`(?m)^agent-k `, r.stdout) {
		t.Fatalf("got members\n%s\nwant agent-k listed", r.stdout)
	}
	mustRunEnv(t, exitNoJoin, env(other, "prod"), "members")
	mustRunEnv(t, exitNoJoin, env(key, "dev"), "members")
}

func mustRunEnv(t *testing.T, want int, env []string, args ...string) result {
	t.Helper()
	r := runEnv(t, env, "", args...)
	if r.code != want {
		t.Fatalf("got exit %d, want %d (env %q)\n%s", r.code, want, env, r)
	}
	return r
}

func regexpMatch(expr, s string) bool {
	return regexp.MustCompile(expr).MatchString(s)
}
