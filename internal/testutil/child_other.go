//go:build !linux

package testutil

import "syscall"

// ChildAttr: outside Linux there is no parent death signal; a child of a
// test binary killed hard keeps running until it ends by itself.
func ChildAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}
