package otelspmesh_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreDoesNotImportOpenTelemetry: only this package may depend on
// OpenTelemetry; users of the patterns, discovery and metrics do not pay
// for it (as metrics' test holds for Prometheus).
func TestCoreDoesNotImportOpenTelemetry(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	pkgs := []string{".", "./pubsub", "./reqrep", "./pipeline", "./survey", "./discovery", "./metrics", "./internal/..."}
	cmd := exec.Command("go", append([]string{"list", "-deps"}, pkgs...)...)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "go.opentelemetry.io/") {
			t.Errorf("a core package depends on %s", p)
		}
	}
}
