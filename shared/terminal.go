package shared

import (
	"bufio"
	"io"
)

// EnterPresses returns a channel that receives once per line typed on stdin when stdin is a
// terminal, as the article's "press Enter" prompts expect. For anything else (a pipe, /dev/null,
// a test) it returns nil, a channel that never receives: such programs run until a signal.
func EnterPresses(stdin io.Reader) <-chan struct{} {
	if !IsTerminal(stdin) {
		return nil
	}
	ch := make(chan struct{})
	go func() {
		// Ends with the process: a read on a terminal cannot be interrupted portably.
		s := bufio.NewScanner(stdin)
		for s.Scan() {
			ch <- struct{}{}
		}
	}()
	return ch
}
