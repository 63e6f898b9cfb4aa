package tests

import (
	"bytes"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
)

// TestPublishToSysAcknowledged: a QoS 1 or 2 PUBLISH to a $SYS topic is acknowledged, and its
// message dropped, on our broker as on Mosquitto: success in MQTT 3.1.1 (a QoS 2 exchange runs
// to its PUBCOMP), 0x87 (not authorised) in MQTT 5. mochi dropped it without a word, and the
// client waited for its acknowledgement for ever.
func TestPublishToSysAcknowledged(t *testing.T) {
	for _, c := range []struct {
		name    string
		version byte
		qos     byte
		code    byte
	}{
		{"MQTT 3.1.1, QoS 1", 4, 1, 0},
		{"MQTT 3.1.1, QoS 2", 4, 2, 0},
		{"MQTT 5, QoS 1", 5, 1, packets.ErrNotAuthorized.Code},
		{"MQTT 5, QoS 2", 5, 2, packets.ErrNotAuthorized.Code},
	} {
		t.Run(c.name, func(t *testing.T) {
			onBothBrokers(t, func(t *testing.T, rc *rawConn) {
				rc.connect(t, rawmqtt.Connect{ID: "sys", Version: c.version, Clean: true, KeepAlive: 30})
				rc.send(t, rawmqtt.Encode(packets.Packet{ProtocolVersion: c.version,
					FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: c.qos}, TopicName: "$SYS/x", PacketID: 7, Payload: []byte("m")}))
				want := map[byte]byte{1: packets.Puback, 2: packets.Pubrec}[c.qos]
				ack, err := rawmqtt.Decode(rc.read(t), c.version)
				if err != nil || ack.FixedHeader.Type != want || ack.PacketID != 7 || ack.ReasonCode != c.code {
					t.Fatalf("answer %+v (%v); want type %d, id 7, reason %#x", ack.FixedHeader, err, want, c.code)
				}
				if c.qos == 2 && c.code == 0 {
					rc.send(t, rawmqtt.Ack(packets.Pubrel, 7))
					if comp := rc.read(t); !bytes.Equal(comp[:4], []byte{0x70, 2, 0, 7}) {
						t.Fatalf("answer to PUBREL % x, want PUBCOMP 7", comp)
					}
				}
				rc.send(t, rawmqtt.Pingreq()) // the connection goes on
				if pong := rc.read(t); pong[0] != 0xd0 {
					t.Fatalf("answer to PINGREQ % x", pong)
				}
			})
		})
	}
}
