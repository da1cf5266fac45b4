//go:build !linux

package main

import "syscall"

// childAttr: outside Linux there is no parent death signal; children left
// behind by a supervisor killed hard notice nothing and must be stopped by
// hand (a supervisor that exits normally stops them).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}
