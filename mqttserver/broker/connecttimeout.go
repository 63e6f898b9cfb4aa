package broker

import (
	"net"
	"time"
)

// ConnectTimeout is how long a new connection may take to send its CONNECT (on the TLS
// listener, the handshake included). mochi sets no deadline before CONNECT, so a connection
// that sends nothing would hold two goroutines and a write queue for ever, unseen by
// -max-clients. Once CONNECT is read, mochi replaces the deadline with 1.5 × the keep-alive.
const ConnectTimeout = 10 * time.Second

// connectDeadline is a listener whose connections must send CONNECT within timeout.
type connectDeadline struct {
	net.Listener
	timeout time.Duration
}

func (l connectDeadline) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(l.timeout))
	}
	return c, err
}
