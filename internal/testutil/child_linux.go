package testutil

import "syscall"

// ChildAttr makes a child process die (SIGKILL) with the test process:
// the parent death signal.
func ChildAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
