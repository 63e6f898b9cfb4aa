//go:build !unix

package harness

import "os"

// killPID kills a process the test's terminal started, by its id.
func killPID(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}
