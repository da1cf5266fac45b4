package logx

import (
	"testing"

	"github.com/spmesh/spmesh/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }
