package hostile

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// LimitEnv names the environment variable through which RunChild gives a
// child its address-space cap, in bytes; the child applies it with
// ApplyLimit first thing in main.
const LimitEnv = "SPMESH_HOSTILE_RLIMIT_AS"

// ApplyLimit sets the process's address-space limit (RLIMIT_AS) from
// LimitEnv, if set. With it, an allocation from a hostile claim (tens of
// GiB) makes the Go runtime fail with "out of memory" in this process
// instead of exhausting the host.
func ApplyLimit() error {
	v := os.Getenv(LimitEnv)
	if v == "" {
		return nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return fmt.Errorf("%s=%q: %w", LimitEnv, v, err)
	}
	return syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: n, Max: n})
}

// BuildChild builds the main package pkg (an import path) into dir,
// without the race detector even when the calling test runs under it: the
// race runtime reserves terabytes of address space, so a race-built child
// could not start under an address-space cap. It skips the test when no
// go toolchain is found.
func BuildChild(t testing.TB, dir, pkg string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(gobin); err != nil {
			t.Skipf("no go toolchain to build the address-capped child %s: %v", pkg, err)
		}
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, "build", "-race=false", "-o", bin, pkg)
	// Whatever GOFLAGS the test run has, the child is built without -race.
	var flags []string
	for _, f := range strings.Fields(os.Getenv("GOFLAGS")) {
		if f != "-race" && f != "--race" && !strings.HasPrefix(f, "-race=") {
			flags = append(flags, f)
		}
	}
	cmd.Env = append(os.Environ(), "GOFLAGS="+strings.Join(flags, " "))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// ChildResult is what a child process did.
type ChildResult struct {
	Stdout, Stderr string
	Err            error // nil when it exited 0
	Elapsed        time.Duration
}

// RunChild runs bin with args under an address-space cap of limit bytes
// (0: none), killed when timeout passes or when the test process dies
// (Pdeathsig).
func RunChild(bin string, limit uint64, timeout time.Duration, args ...string) ChildResult {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = os.Environ()
	if limit > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", LimitEnv, limit))
	}
	// A fresh heap target: the child's allocation figures are its own.
	cmd.Env = append(cmd.Env, "GOGC=100", "GOMEMLIMIT=off")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	return ChildResult{Stdout: out.String(), Stderr: errb.String(), Err: err, Elapsed: time.Since(start)}
}
