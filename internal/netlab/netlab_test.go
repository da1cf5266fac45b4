package netlab

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	MaybeChild(Commands{
		// addrs: this process's interface addresses.
		"addrs": func([]string) (string, error) {
			as, err := net.InterfaceAddrs()
			var out []string
			for _, a := range as {
				out = append(out, a.String())
			}
			return strings.Join(out, ","), err
		},
	})
	goleak.VerifyTestMain(m)
}

func TestServe(t *testing.T) {
	cmds := Commands{
		"echo": func(a []string) (string, error) { return strings.Join(a, " "), nil },
		"fail": func(a []string) (string, error) { return "partial", errors.New("boom") },
	}
	in := strings.NewReader(`["echo","a","b"]` + "\n" + `["fail"]` + "\n" + `["nope"]` + "\n" + "garbage\n")
	var out bytes.Buffer
	if code := serve("h0", cmds, in, &out); code != 0 {
		t.Fatalf("exit code: got %d, want 0", code)
	}
	want := `{"out":"a b"}` + "\n" +
		`{"out":"partial","err":"boom"}` + "\n" +
		`{"err":"netlab child h0: unknown command \"nope\""}` + "\n" +
		`{"err":"netlab child h0: bad command \"garbage\""}` + "\n"
	if got := out.String(); got != want {
		t.Fatalf("replies: got\n%s\nwant\n%s", got, want)
	}
}

// TestLab builds a two-host lab and checks a child runs inside a host
// (skipped without root and nft).
func TestLab(t *testing.T) {
	lab := New(t, 2)
	if len(lab.Hosts) != 2 || lab.Hosts[1].IP != Subnet+".2" {
		t.Fatalf("hosts: got %+v, want 2 with %s.2 second", lab.Hosts, Subnet)
	}
	p := lab.Hosts[1].Start(t)
	got, err := p.Call("addrs")
	if err != nil || !strings.Contains(got, Subnet+".2/24") {
		t.Fatalf("child's addresses: got %q, %v, want %s.2/24 among them", got, err, Subnet)
	}
	if _, err := p.Call("nope"); err == nil {
		t.Fatal("unknown command: got no error, want one")
	}
	p.Kill()
	if _, err := p.Call("addrs"); err == nil {
		t.Fatal("call after Kill: got no error, want one")
	}
	lab.Partition(lab.Hosts[:1], lab.Hosts[1:])
	lab.Loss(lab.Hosts[0], 10)
	lab.Heal()
}
