//go:build !unix

package console

import "os"

// lineWaiting: without Unix job control a read never stops the process.
func lineWaiting(*os.File) bool { return true }
