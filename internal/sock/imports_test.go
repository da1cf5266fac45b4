package sock_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// mangosMayImport are the packages of the module allowed to import mangos:
// sock, where the sockets live, and sptcp, the TCP transport it plugs in.
// (Tests may import it too; bench/ is a module of its own.)
var mangosMayImport = []string{
	"github.com/spmesh/spmesh/internal/sock",
	"github.com/spmesh/spmesh/internal/sptcp",
}

// TestMangosSealedInSock checks the import graph: no package of the module
// but sock and sptcp imports mangos, so every pattern (and discovery)
// reaches it only through sock, which translates its errors, frames,
// options and events. Test files are not counted.
func TestMangosSealedInSock(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the import graph: %v", err)
	}
	cmd := exec.Command(goTool, "list", "-deps", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "github.com/spmesh/spmesh/...")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	var importers []string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "github.com/spmesh/spmesh") {
			continue
		}
		for _, imp := range f[1:] {
			if imp == "go.nanomsg.org/mangos/v3" || strings.HasPrefix(imp, "go.nanomsg.org/mangos/v3/") {
				importers = append(importers, f[0])
				if !slices.Contains(mangosMayImport, f[0]) {
					t.Errorf("%s imports %s: only internal/sock (and its transport, internal/sptcp) may import mangos", f[0], imp)
				}
				break
			}
		}
	}
	// Not vacuous: the listing did see sock's own imports.
	if !slices.Contains(importers, mangosMayImport[0]) {
		t.Fatalf("go list shows no mangos import in %s: the listing is wrong\n%s", mangosMayImport[0], out)
	}
}
