//go:build unix

package harness

import "syscall"

// killPID kills a process the test's terminal started, by its id.
func killPID(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }
