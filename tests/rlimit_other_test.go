//go:build !unix

package tests

import "testing"

// raiseFileLimit: the open-file limit is a Unix setting; the load tests that need it run on Unix.
func raiseFileLimit(t *testing.T, need uint64) {
	t.Skipf("needs %d open files: the limit is raised on Unix only", need)
}
