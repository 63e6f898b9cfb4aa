//go:build !unix

package broker

import "syscall"

// tryWrite leaves every write to the writer goroutine where the socket cannot be tried without waiting.
func tryWrite(syscall.RawConn, []byte) (int, error) { return 0, nil }
