//go:build !unix

package console

import "os"

// lineWaiting: without Unix job control a read never stops the process.
func lineWaiting(*os.File) bool { return true }

// foreground: without Unix job control a console program is always in the foreground.
func foreground(int) bool { return true }
