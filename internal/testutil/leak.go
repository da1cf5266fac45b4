package testutil

import (
	"testing"

	"go.uber.org/goleak"
)

// LeakOptions are the goleak options of packages whose tests run
// memberlist: a probe memberlist started before Shutdown waits for its ack
// or its probe timeout (memberlist's probeNode reads its ack channel without
// watching shutdown), then ends by itself. Nothing else is ignored.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
	}
}

// VerifyTestMain is goleak.VerifyTestMain with [LeakOptions].
func VerifyTestMain(m *testing.M) { goleak.VerifyTestMain(m, LeakOptions()...) }
