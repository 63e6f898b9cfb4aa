//go:build unix

package broker

import (
	"os"
	"syscall"
)

// tryWrite writes what the socket takes now, without waiting for it. Called with c.mu held;
// c.rawWrite is bound once per connection, so a write allocates nothing.
func (c *flowConn) tryWrite(p []byte) (int, error) {
	c.wp, c.wn, c.werr = p, 0, nil
	err := c.raw.Write(c.rawWrite)
	n, werr := c.wn, c.werr
	c.wp, c.werr = nil, nil
	if err == nil {
		err = werr
	}
	return n, err
}

// writeNow is the function tryWrite gives the socket: it never waits.
func (c *flowConn) writeNow(fd uintptr) bool {
	for c.wn < len(c.wp) {
		w, err := syscall.Write(int(fd), c.wp[c.wn:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			if err != syscall.EAGAIN {
				c.werr = os.NewSyscallError("write", err)
			}
			break
		}
		if w <= 0 {
			break
		}
		c.wn += w
	}
	return true // done either way
}
