package limits

import (
	"bytes"
	"log/slog"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
)

// TestWithoutQoS0 drops exactly the QoS 0 PUBLISH packets of a write, whole, and counts them.

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
			f := NewFlowControl(server, DefaultLimits(), slog.New(slog.DiscardHandler))
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
