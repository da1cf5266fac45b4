package main

import "syscall"

// childAttr makes a child process die with its parent (Linux: the parent
// death signal), so that no role outlives a supervisor killed hard.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
