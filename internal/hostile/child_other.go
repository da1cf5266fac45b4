//go:build !linux

package hostile

import (
	"testing"
	"time"
)

// LimitEnv: see the Linux version.
const LimitEnv = "SPMESH_HOSTILE_RLIMIT_AS"

// ApplyLimit does nothing off Linux.
func ApplyLimit() error { return nil }

// BuildChild skips: the address-capped children need Linux.
func BuildChild(t testing.TB, dir, pkg string) string {
	t.Skip("address-capped child processes need Linux (RLIMIT_AS, Pdeathsig)")
	return ""
}

// ChildResult: see the Linux version.
type ChildResult struct {
	Stdout, Stderr string
	Err            error
	Elapsed        time.Duration
}

// RunChild is never reached off Linux (BuildChild skips).
func RunChild(bin string, limit uint64, timeout time.Duration, args ...string) ChildResult {
	panic("hostile: RunChild needs Linux")
}
