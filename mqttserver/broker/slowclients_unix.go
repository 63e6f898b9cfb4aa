//go:build unix

package broker

import (
	"os"
	"syscall"
)

// tryWrite writes what the socket takes now, without waiting for it.
func tryWrite(raw syscall.RawConn, p []byte) (int, error) {
	var n int
	var werr error
	err := raw.Write(func(fd uintptr) bool {
		for n < len(p) {
			w, err := syscall.Write(int(fd), p[n:])
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				if err != syscall.EAGAIN {
					werr = os.NewSyscallError("write", err)
				}
				break
			}
			if w <= 0 {
				break
			}
			n += w
		}
		return true // done either way: never wait for the socket here
	})
	if err == nil {
		err = werr
	}
	return n, err
}
