package harness

import (
	"os"
	"testing"

	"github.com/creack/pty"
)

// StartInTerminal runs bin with a pseudo-terminal as its standard input, as a person at a
// terminal runs it, so that its "press Enter" behaviour can be driven with PressEnter. Output
// is still collected in p.Out.
func StartInTerminal(tb testing.TB, name, bin string, env []string, args ...string) (*Proc, *os.File) {
	tb.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		tb.Skipf("no pseudo-terminal here: %v", err)
	}
	tb.Cleanup(func() { ptmx.Close() }) // runs after the process is killed (cleanups run last-in first-out)
	p := launch(tb, name, bin, env, tty, nil, args)
	tty.Close() // the child holds its own copy
	return p, ptmx
}

// PressEnter types Enter on the terminal.
func PressEnter(tb testing.TB, term *os.File) {
	tb.Helper()
	if _, err := term.Write([]byte("\n")); err != nil {
		tb.Fatalf("press Enter: %v", err)
	}
}
