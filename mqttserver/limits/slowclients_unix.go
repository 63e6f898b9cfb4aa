//go:build unix

package limits

import (
	"io"
	"os"
	"syscall"
)

// tryRead reads what the socket holds now, without waiting for more; 0, nil when it holds
// nothing. Called only by mochi's reading goroutine.
func (c *flowConn) tryRead(p []byte) (int, error) {
	c.rp, c.rn, c.rerr = p, 0, nil
	err := c.raw.Read(c.rawRead)
	n, rerr := c.rn, c.rerr
	c.rp, c.rerr = nil, nil
	if err == nil {
		err = rerr
	}
	return n, err
}

// readNow is the function tryRead gives the socket: it never waits.
func (c *flowConn) readNow(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), c.rp)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
		case err != nil:
			c.rerr = os.NewSyscallError("read", err)
		case n == 0:
			c.rerr = io.EOF
		default:
			c.rn = n
		}
		return true
	}
}
