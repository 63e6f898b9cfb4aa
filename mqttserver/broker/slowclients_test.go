package broker

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
)

// TestWithoutQoS0 drops exactly the QoS 0 PUBLISH packets of a write, whole, and counts them.
func TestWithoutQoS0(t *testing.T) {
	pub0 := rawmqtt.Publish("a/", 0, 0, []byte("hi"))
	pub1 := rawmqtt.Publish("b/", 1, 1, []byte("hi"))
	puback := rawmqtt.Ack(packets.Puback, 7)
	long0 := rawmqtt.Publish("c", 0, 0, make([]byte, 125)) // remaining length 128: two length bytes
	join := func(ps ...[]byte) []byte { return bytes.Join(ps, nil) }
	for _, c := range []struct {
		name    string
		in      []byte
		want    []byte
		dropped int64
	}{
		{"one QoS 0", pub0, nil, 1},
		{"one QoS 1", pub1, pub1, 0},
		{"mixed", join(puback, pub0, pub1, long0, puback), join(puback, pub1, puback), 2},
		{"not whole packets: kept", pub0[:5], pub0[:5], 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			server := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
			f := newFlowControl(server, DefaultLimits(), slog.New(slog.DiscardHandler))
			got := (&flowConn{flow: f}).withoutQoS0(c.in)
			if !bytes.Equal(got, c.want) {
				t.Errorf("kept % x, want % x", got, c.want)
			}
			if n := server.Info.MessagesDropped; n != c.dropped {
				t.Errorf("counted %d dropped, want %d", n, c.dropped)
			}
		})
	}
}

// TestSlowClientTimeout: a subscriber that takes nothing of what waits for it for
// -slow-client-timeout is disconnected as a slow consumer, though under -max-queued-bytes.
func TestSlowClientTimeout(t *testing.T) {
	lim := DefaultLimits()
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
			logs.has(t, msgDisconnected, map[string]any{"client": "slow", "reason": "slow-consumer"})
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
