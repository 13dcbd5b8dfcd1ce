//go:build !linux

package multi

import "syscall"

// sysProcAttr returns nil: only Linux can tie a child's life to its parent.
// Cleanups and TestMain still kill the processes.
func sysProcAttr() *syscall.SysProcAttr { return nil }
