package console

import (
	"bytes"
	"io"
	"os"
)

// EnterPresses returns a channel that receives once per line typed on stdin when stdin is a
// terminal, as the article's "press Enter" prompts expect. For anything else (a pipe, /dev/null,
// a test) it returns nil, a channel that never receives: such programs run until a signal.
//
// It reads the terminal only while the program is in the terminal's foreground: the kernel stops
// a background process that reads its terminal (SIGTTIN), so `program &` would freeze at once and
// `bg` would freeze it again. In the background it waits, and reads again after `fg`.
func EnterPresses(stdin io.Reader) <-chan struct{} {
	f, ok := stdin.(*os.File)
	if !ok || !IsTerminal(f) {
		return nil
	}
	ch := make(chan struct{})
	go func() {
		// Ends with the process, or when the terminal goes away.
		buf := make([]byte, 4096)
		for {
			if !lineWaiting(f) {
				continue
			}
			n, err := f.Read(buf)
			if n == 0 || err != nil {
				return // end of input (Ctrl-D) or a terminal that is gone
			}
			for range bytes.Count(buf[:n], []byte{'\n'}) {
				ch <- struct{}{}
			}
		}
	}()
	return ch
}

// EnterPrompt is the line that tells what Enter does: "press Enter to " + action, or, for a
// program started in the background (program &), where the terminal's Enter goes to the shell,
// how to get there first.
func EnterPrompt(stdin io.Reader, action string) string {
	if f, ok := stdin.(*os.File); ok && IsTerminal(f) && !foreground(int(f.Fd())) {
		return "running in the background: after fg, press Enter to " + action
	}
	return "press Enter to " + action
}
