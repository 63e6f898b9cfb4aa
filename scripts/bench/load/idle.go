package load

import (
	"context"
	"fmt"
	"net"
	"sync"
)

// IdleConns are MQTT connections that only hold a broker's memory; nil where a connection failed.
type IdleConns []*mqttConn

// OpenIdle opens n MQTT connections (clean session, keep-alive 0) and waits for every CONNACK.
// They come from 8 source addresses in 127.0.0.0/8, so ephemeral ports never run short; round
// goes into the client ids. On an error it still returns the connections it opened: close them.
func OpenIdle(ctx context.Context, addr string, n, round int) (IdleConns, error) {
	conns := make(IdleConns, n)
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	next := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%8))}
				var c *mqttConn
				var err error
				// A loaded broker may reset a connection while it accepts thousands: retry.
				for try := 0; try < 3 && (try == 0 || err != nil); try++ {
					c, err = dialMQTT(ctx, addr, local, fmt.Sprintf("idle-%d-%d", round, i), 64)
				}
				if err != nil {
					select {
					case errs <- fmt.Errorf("connection %d: %w", i, err):
					default:
					}
					continue
				}
				conns[i] = c
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return conns, err
	default:
		return conns, nil
	}
}

// Close closes every socket without a DISCONNECT.
func (cs IdleConns) Close() {
	for _, c := range cs {
		if c != nil {
			c.nc.Close()
		}
	}
}
