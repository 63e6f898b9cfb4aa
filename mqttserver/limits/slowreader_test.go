package limits

import (
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"mqttdemo/mqttserver/rawmqtt"
)

// steadyConn takes every buffer it is given after perBuffer: a client that reads steadily, at
// 32 KiB in 2 ms, more than the writer's 128 KiB part takes within behindAfter.
type steadyConn struct {
	net.Conn
	perBuffer time.Duration
	taken     atomic.Int64
}

func (c *steadyConn) Write(p []byte) (int, error) {
	time.Sleep(c.perBuffer) // the client's reading rate, not a wait for anything
	c.taken.Add(int64(len(p)))
	return len(p), nil
}

// fullSocket is a socket that never takes a write without waiting, so every write goes to the
// writer goroutine, whose writes go through steadyConn in parts as over TCP.
type fullSocket struct{}

func (fullSocket) Control(func(uintptr)) error    { return nil }
func (fullSocket) Read(func(uintptr) bool) error  { return nil }
func (fullSocket) Write(func(uintptr) bool) error { return nil }

var _ syscall.RawConn = fullSocket{}

// TestQoS1PastTheBudgetEndsAReadingClient: a client that reads, but more slowly than QoS 1
// copies come, is disconnected as a slow consumer once more than -max-queued-bytes waits for it
// (docs/server.md, -max-queued-bytes). Here the publisher writes two copies for each the client
// takes, so what waits grows without end unless the client is ended.
func TestQoS1PastTheBudgetEndsAReadingClient(t *testing.T) {
	l := DefaultLimits()
	l.MaxQueuedBytes = 256 << 10
	server := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	f := NewFlowControl(server, l, NewTraffic(), slog.New(slog.DiscardHandler))
	conn, peer := net.Pipe()
	defer peer.Close()
	sc := &steadyConn{Conn: conn, perBuffer: 2 * time.Millisecond}
	fc := &flowConn{Conn: sc, flow: f, raw: fullSocket{}, socketClosed: make(chan struct{})}
	fc.rawWrite = fc.writeNow
	defer fc.closeSocket(true)
	waiting := func() int {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		return fc.unsent + fc.writing
	}
	pub1 := rawmqtt.Publish("a", 1, 1, make([]byte, 32<<10))
	var written int64
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 10_000 && time.Now().Before(deadline); i++ {
		// two copies written for each the client takes
		for sc.taken.Load() < (written-int64(len(pub1)))/2 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Microsecond)
		}
		if _, err := fc.Write(pub1); err != nil {
			if !errors.Is(err, ErrSlowConsumer) {
				t.Fatalf("write: %v", err)
			}
			return
		}
		written += int64(len(pub1))
		if w := waiting(); w > 8*f.maxUnsent {
			t.Fatalf("%d bytes of QoS 1 copies wait for a client that reads more slowly than they come (-max-queued-bytes %d): it was not disconnected", w, f.maxUnsent)
		}
	}
	t.Fatal("the client was never disconnected")
}
