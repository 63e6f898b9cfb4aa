package load

import (
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
)

// TestWireRoundTrip: what the publisher writes, with its head encoded once and the packet id
// patched, mochi decodes as the PUBLISH meant; the acks carry their id.
func TestWireRoundTrip(t *testing.T) {
	payload := make([]byte, 64)
	fillHeader(payload, 3, 42)
	for _, qos := range []byte{0, 1, 2} {
		var buf strings.Builder
		c := newMQTTConn(nil, nil, newTestWriter(&buf))
		head := newPublishHead("bench/x", qos, len(payload))
		for _, id := range []uint16{7, 300} {
			if err := c.writePublish(head, id, payload); err != nil {
				t.Fatal(err)
			}
		}
		c.writeAck(packets.Pubrel, 9)
		c.w.Flush()
		in := rawmqtt.NewReader(newTestReader(buf.String()))
		for _, id := range []uint16{7, 300} {
			fh, body, err := in.Next()
			if err != nil || fh.Type != packets.Publish {
				t.Fatalf("QoS %d: read back type %d, err %v", qos, fh.Type, err)
			}
			pk := packets.Packet{FixedHeader: fh}
			err = pk.PublishDecode(body)
			if qos == 0 {
				id = 0
			}
			if err != nil || fh.Qos != qos || pk.PacketID != id || pk.TopicName != "bench/x" || string(pk.Payload) != string(payload) {
				t.Errorf("QoS %d: decoded qos %d id %d topic %q payload len %d err %v", qos, fh.Qos, pk.PacketID, pk.TopicName, len(pk.Payload), err)
			}
		}
		if fh, body, err := in.Next(); err != nil || fh.Type != packets.Pubrel || fh.Qos != 1 || string(body) != "\x00\x09" {
			t.Errorf("PUBREL 9: read back %+v % x %v", fh, body, err)
		}
	}
}
