//go:build unix

package tests

import (
	"os/exec"
	"syscall"
)

// inOwnGroup starts cmd in a process group of its own, so that killGroup ends its children too.
func inOwnGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

func killGroup(cmd *exec.Cmd) { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
