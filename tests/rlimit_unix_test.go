//go:build unix

package tests

import (
	"syscall"
	"testing"
)

// raiseFileLimit raises this process's open-file limit (children inherit it) or skips the test.
func raiseFileLimit(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < need {
		lim.Cur = min(need, lim.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
	}
	if lim.Cur < need {
		t.Skipf("needs %d open files, the hard limit is %d (ulimit -Hn)", need, lim.Max)
	}
}
