//go:build unix

package console

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// foregroundPoll is how often a program in the background looks whether it is in the foreground
// again, and how long one wait for a line lasts before it looks again.
const foregroundPoll = 250 * time.Millisecond

// lineWaiting waits at most foregroundPoll and reports whether the terminal f has input for this
// process to read now: input is there and the process is in the terminal's foreground.
func lineWaiting(f *os.File) bool {
	fd := int(f.Fd())
	if !foreground(fd) {
		time.Sleep(foregroundPoll)
		return false
	}
	// poll, unlike read, does not stop a process that has just been moved to the background.
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, int(foregroundPoll.Milliseconds()))
	if errors.Is(err, unix.EINTR) || n == 0 {
		return false
	}
	// An error or a hang-up: the read that follows reports it and ends the reader.
	return err != nil || foreground(fd)
}

// foreground reports whether this process is in the foreground process group of the terminal fd.
// A terminal that is not the process's controlling terminal has no say (ENOTTY): reading it
// never stops the process.
func foreground(fd int) bool {
	pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil {
		return true
	}
	return pgrp == unix.Getpgrp()
}
