//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// ownGroup runs c in a process group of its own, and makes the end of its
// ctx kill the whole group (the shell and whatever it started).
func ownGroup(c *exec.Cmd) {
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
}
