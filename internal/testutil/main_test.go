package testutil

import (
	"bufio"
	"fmt"
	"os"
	"testing"
	"time"
)

// childModeEnv makes the test binary a child of child_test.go's tests.
const childModeEnv = "SPMESH_TESTUTIL_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childModeEnv); mode != "" {
		os.Exit(childMain(mode))
	}
	VerifyTestMain(m)
}

// childMain is the child process: "echo" prints READY then echoes stdin
// lines until EOF; "count" prints 1000 numbered lines and exits 0; "fail"
// prints "out" and exits 3; "sleep" sleeps an hour; "parent" starts a
// "sleep" grandchild, prints its pid and waits for stdin to close.
func childMain(mode string) int {
	switch mode {
	case "echo":
		fmt.Println("READY")
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			fmt.Println(sc.Text())
		}
	case "count":
		for i := range 1000 {
			fmt.Println(i)
		}
	case "fail":
		fmt.Println("out")
		return 3
	case "sleep":
		time.Sleep(time.Hour) // until killed: a child, nothing to synchronise
	case "parent":
		cmd := SelfCommand(childModeEnv + "=sleep")
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(cmd.Process.Pid)
		bufio.NewScanner(os.Stdin).Scan() // until stdin closes
	}
	return 0
}
