//go:build !unix

package limits

// tryWrite leaves every write to the writer goroutine where the socket cannot be tried without waiting.
func (c *flowConn) tryWrite([]byte) (int, error) { return 0, nil }

func (c *flowConn) writeNow(uintptr) bool { return true }

func (c *flowConn) tryRead([]byte) (int, error) { return 0, nil }

func (c *flowConn) readNow(uintptr) bool { return true }
