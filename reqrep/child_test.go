package reqrep_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/spmesh/spmesh/reqrep"
)

// childEnv, when set, makes the test binary run as a replier child process
// (see childMain) instead of running tests.
const childEnv = "SPMESH_REQREP_CHILD"

// childMain runs a replier on a loopback port, prints "ADDR <address>", and
// for every request prints "HOLD <id> <attempt>" and holds it until the
// process dies. It exits when its stdin closes.
func childMain() int {
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	rp, err := reqrep.NewReplier(reqrep.HandlerFunc(func(ctx context.Context, req *reqrep.Request) (any, error) {
		mu.Lock()
		fmt.Fprintf(out, "HOLD %s %d\n", req.ID, req.Attempt)
		out.Flush()
		mu.Unlock()
		<-ctx.Done()
		return nil, ctx.Err()
	}), reqrep.WithListen("tcp://127.0.0.1:0"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mu.Lock()
	fmt.Fprintf(out, "ADDR %s\n", rp.Addrs()[0])
	out.Flush()
	mu.Unlock()
	io.Copy(io.Discard, os.Stdin)
	rp.Close()
	return 0
}
