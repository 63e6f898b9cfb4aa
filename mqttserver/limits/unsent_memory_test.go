package limits

import (
	"bytes"
	"log/slog"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"mqttdemo/mqttserver/internal/bare"
	"mqttdemo/mqttserver/rawmqtt"
)

// smallSendBuffer hands out TCP connections whose send buffer is small, so that the bytes a
// client does not read wait in flowConn, not in the kernel.
type smallSendBuffer struct{ net.Listener }

func (l smallSendBuffer) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

// TestUnsentBoundsMemory: what waits for a client that does not read must cost the broker
// about -max-queued-bytes, not many times it. A client sends PINGREQs (2 bytes each) and never
// reads: each PINGRESP waits in pending as mochi's own 2-byte slice of a 64-byte buffer, plus a
// 24-byte slice header, while unsent counts 2 bytes.
func TestUnsentBoundsMemory(t *testing.T) {
	server := bare.New(t, &mqtt.Options{ClientNetWriteBufferSize: 1}, new(auth.AllowHook))
	l := DefaultLimits()
	f := NewFlowControl(server, l, NewTraffic(), slog.New(slog.DiscardHandler))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := server.AddListener(f.Listener(listeners.NewNet("tcp", smallSendBuffer{ln}))); err != nil {
		t.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Close() })

	conn := bare.Connect(t, ln.Addr().String(), rawmqtt.Connect{ID: "deaf", Clean: true, KeepAlive: 60})
	cl, ok := server.Clients.Get("deaf")
	if !ok {
		t.Fatal("client not registered")
	}
	fc := cl.Net.Conn.(*flowConn)
	waiting := func() int {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		return fc.unsent + fc.writing
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	const target = 400 << 10 // well under -max-queued-bytes (1 MiB): the client is not ended
	const pings = 16 << 10
	chunk := bytes.Repeat(rawmqtt.Pingreq(), pings)
	read := atomic.LoadInt64(&server.Info.PacketsReceived)
	deadline := time.Now().Add(30 * time.Second)
	for waiting() < target && time.Now().Before(deadline) {
		_ = conn.SetWriteDeadline(time.Now().Add(bare.Wait))
		if _, err := conn.Write(chunk); err != nil {
			t.Fatalf("write: %v (unsent %d)", err, waiting())
		}
		// wait until mochi has read the chunk (a pause in what it sends is no sign of it on a busy
		// machine: the next chunk then came in on top, and the client ended past -max-queued-bytes)
		read += pings
		for atomic.LoadInt64(&server.Info.PacketsReceived) < read && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	unsent := waiting()
	if unsent < target {
		t.Fatalf("only %d bytes wait unsent", unsent)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("unsent %d bytes (limit %d); heap grew by %d bytes: %.1f× unsent", unsent, l.MaxQueuedBytes, held, float64(held)/float64(unsent))
	if held > 4*int64(unsent) {
		t.Errorf("%d bytes counted as unsent hold %d bytes of heap (%.1f×): -max-queued-bytes does not bound the memory a client that does not read costs",
			unsent, held, float64(held)/float64(unsent))
	}
	runtime.KeepAlive(conn)
}
