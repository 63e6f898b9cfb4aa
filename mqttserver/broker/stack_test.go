//go:build !race

// Not with -race: the race detector's instrumentation enlarges every frame, so the stack sizes
// measured here are not those of the broker as built.

package broker

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/limits"
	"mqttdemo/mqttserver/rawmqtt"
)

// TestWriteLoopStack: a connection's write loop (mochi's WriteLoop, through our OnPacketEncode
// hooks to the socket) fits in 8 KiB of stack. A hook that copies the 800-byte packet into its
// frame made every subscriber's write loop grow to 16 KiB at its first message: 8 KB more per
// connection in the 1,000-subscriber trickle.
func TestWriteLoopStack(t *testing.T) {
	const subs = 100
	// No collection during the test: it would shrink stacks and hide their growth.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	cfg := Config{Listen: "127.0.0.1:0", LogFormat: "json", LogLevel: slog.LevelInfo, Limits: limits.DefaultLimits()}
	b, err := New(cfg, eventlog.NewLogger(cfg.logSettings(), io.Discard, noEnv), eventlog.LibraryLogger(cfg.logSettings(), io.Discard, false))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	conns := make([]net.Conn, subs)
	readers := make([]*bufio.Reader, subs)
	for i := range subs {
		conns[i] = dialRaw(t, b.Addr(), fmt.Sprint("sub", i))
		readers[i] = bufio.NewReader(conns[i])
		mustWrite(t, conns[i], rawmqtt.Subscribe(1, fmt.Sprint("stack/", i), 1))
		expectPacket(t, conns[i], readers[i], packets.Suback)
	}
	pub := dialRaw(t, b.Addr(), "pub")
	before := stackBytes()
	for i := range subs {
		mustWrite(t, pub, rawmqtt.Publish(fmt.Sprint("stack/", i), 0, 0, []byte("x")))
	}
	for i := range subs {
		expectPacket(t, conns[i], readers[i], packets.Publish)
	}
	grown := (stackBytes() - before) / subs
	t.Logf("stacks grew %d bytes per subscriber at its first message", grown)
	if grown >= 8<<10 {
		t.Errorf("stacks grew %d bytes per subscriber at its first message, want under 8 KiB: a write loop past 8 KiB", grown)
	}
}

// dialRaw connects an MQTT 3.1.1 client with a clean session and reads its CONNACK.
func dialRaw(t *testing.T, addr, id string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	mustWrite(t, c, rawmqtt.Connect{ID: id, Clean: true}.Encode())
	expectPacket(t, c, bufio.NewReaderSize(c, 16), packets.Connack)
	return c
}

func mustWrite(t *testing.T, c net.Conn, p []byte) {
	t.Helper()
	if _, err := c.Write(p); err != nil {
		t.Fatal(err)
	}
}

// expectPacket reads the next packet from r, reading c, and checks its type.
func expectPacket(t *testing.T, c net.Conn, r *bufio.Reader, want byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	raw, err := rawmqtt.Read(r)
	if err != nil {
		t.Fatalf("read %s: %v", packets.PacketNames[want], err)
	}
	if got := raw[0] >> 4; got != want {
		t.Fatalf("got packet type %d, want %s", got, packets.PacketNames[want])
	}
}

// stackBytes is the memory the runtime holds for goroutine stacks.
func stackBytes() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}
