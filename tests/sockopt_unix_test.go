//go:build unix

package tests

import "syscall"

// setRecvBuffer sets a socket's receive buffer before it connects (the window it offers).
func setRecvBuffer(fd uintptr, n int) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}
