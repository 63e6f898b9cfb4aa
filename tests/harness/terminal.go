package harness

import (
	"os"
	"os/exec"
	"testing"

	"github.com/creack/pty"
)

// StartInTerminal runs bin with a pseudo-terminal as its standard input, as a person at a
// terminal runs it, so that its "press Enter" behaviour can be driven with PressEnter. Output
// is still collected in p.Out.
func StartInTerminal(tb testing.TB, name, bin string, env []string, args ...string) (*Proc, *os.File) {
	tb.Helper()
	if env == nil {
		env = Env()
	}
	ptmx, tty, err := pty.Open()
	if err != nil {
		tb.Skipf("no pseudo-terminal here: %v", err)
	}
	p := &Proc{Name: name, Cmd: exec.Command(bin, args...), Out: new(Output), done: make(chan struct{})}
	p.Cmd.Env = env
	p.Cmd.Stdin = tty
	p.Cmd.Stdout, p.Cmd.Stderr = p.Out, p.Out
	if err := p.Cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	tty.Close() // the child holds its own copy
	go func() {
		p.waited = p.Cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.done
		ptmx.Close()
		if tb.Failed() {
			tb.Logf("--- output of %s:\n%s", name, p.Out.String())
		}
	})
	return p, ptmx
}

// PressEnter types Enter on the terminal.
func PressEnter(tb testing.TB, term *os.File) {
	tb.Helper()
	if _, err := term.Write([]byte("\n")); err != nil {
		tb.Fatalf("press Enter: %v", err)
	}
}
