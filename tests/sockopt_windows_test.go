//go:build windows

package tests

import "syscall"

// setRecvBuffer sets a socket's receive buffer before it connects (the window it offers).
func setRecvBuffer(fd uintptr, n int) error {
	return syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}
