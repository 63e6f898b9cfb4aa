//go:build windows

package console

import (
	"os"

	"golang.org/x/sys/windows"
)

// enableEscapes turns on the Windows console's handling of colour escape sequences for f, which
// the console leaves off unless a program asks: fatih/color asks for stdout only, and the
// subscriber's -json talk goes to stderr. It reports false where the console cannot (before
// Windows 10), so that no raw escapes are printed.
func enableEscapes(f *os.File) bool {
	h := windows.Handle(f.Fd())
	var mode uint32
	if windows.GetConsoleMode(h, &mode) != nil {
		return true // not a console but a Cygwin or MSYS terminal (mintty): it reads escapes itself
	}
	if mode&windows.ENABLE_VIRTUAL_TERMINAL_PROCESSING != 0 {
		return true
	}
	return windows.SetConsoleMode(h, mode|windows.ENABLE_PROCESSED_OUTPUT|windows.ENABLE_VIRTUAL_TERMINAL_PROCESSING) == nil
}
