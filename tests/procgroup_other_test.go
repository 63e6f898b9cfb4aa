//go:build !unix

package tests

import "os/exec"

// inOwnGroup: process groups are a Unix notion; elsewhere killGroup ends cmd alone.
func inOwnGroup(*exec.Cmd) {}

func killGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
