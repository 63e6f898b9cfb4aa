package broker

import (
	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/limits"
	"mqttdemo/mqttserver/rawmqtt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestSlowClientTimeout: a subscriber that takes nothing of what waits for it for
// -slow-client-timeout is disconnected as a slow consumer, though under -max-queued-bytes.
func TestSlowClientTimeout(t *testing.T) {
	lim := limits.DefaultLimits()
	lim.SlowClientTimeout, lim.MaxQueuedBytes = time.Second, 64<<20
	b, logs := startBroker(t, Config{Limits: lim})
	notReading(t, b.Addr(), rawmqtt.Connect{ID: "slow", Clean: true}.Encode(), "t")

	pub := connect(t, clientOpts(b.Addr(), "pub"))
	big := strings.Repeat("x", 64<<10)
	for range 100 { // 6.4 MB: more than the socket buffers take, less than -max-queued-bytes
		if err := wait(pub.Publish("t", 1, false, big)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the slow consumer disconnected", func() bool {
		return logs.has(t, "slow consumer disconnected", map[string]any{"client": "slow", "reason": "read nothing for -slow-client-timeout"}) &&
			logs.has(t, eventlog.MsgDisconnected, map[string]any{"client": "slow", "reason": "slow-consumer"})
	})
}

// notReading connects with connect (a CONNECT packet) and a 4 KiB receive buffer, subscribes to
// filter at QoS 1 and then reads nothing.
func notReading(t *testing.T, addr string, connect []byte, filter string) net.Conn {
	t.Helper()
	var d net.Dialer
	sub, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.(*net.TCPConn).SetReadBuffer(4096)
	t.Cleanup(func() { sub.Close() })
	rawExchange(t, sub, connect, 0x20, -1)
	rawExchange(t, sub, rawmqtt.Subscribe(1, filter, 1), 0x90, 1)
	return sub
}
