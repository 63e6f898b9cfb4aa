//go:build !windows

package console

import "os"

// enableEscapes: terminals outside Windows read colour escape sequences as they are.
func enableEscapes(*os.File) bool { return true }
