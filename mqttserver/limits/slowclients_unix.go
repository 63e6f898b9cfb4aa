//go:build unix

package limits

import (
	"io"
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
