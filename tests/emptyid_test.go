package tests

import (
	"bytes"
	"fmt"
	"testing"

	"mqttdemo/mqttserver/rawmqtt"
)

// TestEmptyClientIDPersistentRefused: an MQTT 3.1.1 CONNECT with an empty client id and
// CleanSession 0 is refused with CONNACK 0x02, identifier rejected [MQTT-3.1.3-8], by our broker
// as by Mosquitto. mochi answered 0x80, which 3.1.1 does not have.
func TestEmptyClientIDPersistentRefused(t *testing.T) {
	onBothBrokers(t, func(t *testing.T, c *rawConn) {
		c.send(t, rawmqtt.Connect{ID: "", Clean: false, KeepAlive: 30}.Encode())
		if ack := c.read(t); !bytes.Equal(ack, []byte{0x20, 2, 0, 2}) {
			t.Errorf("CONNACK % x, want 20 02 00 02 (identifier rejected)", ack)
		}
	})
}

// TestUnsupportedProtocolLevelRefused: a CONNECT of a protocol level the broker does not serve
// is refused with a 3.1.1 CONNACK 0x01, unacceptable protocol level [MQTT-3.1.2-2], by our broker
// as by Mosquitto. mochi answered 0x82, which 3.1.1 does not have.
func TestUnsupportedProtocolLevelRefused(t *testing.T) {
	for _, level := range []byte{2, 3, 6} { // 3 is MQTT 3.1 only under its own name, MQIsdp
		t.Run(fmt.Sprintf("level %d", level), func(t *testing.T) {
			onBothBrokers(t, func(t *testing.T, c *rawConn) {
				c.send(t, rawmqtt.Connect{ID: "old", Version: level, Clean: true, KeepAlive: 30}.Encode())
				if ack := c.read(t); !bytes.Equal(ack, []byte{0x20, 2, 0, 1}) {
					t.Errorf("CONNACK % x, want 20 02 00 01 (unacceptable protocol level)", ack)
				}
			})
		})
	}
}

// TestMalformedConnect311Closed: an MQTT 3.1.1 CONNECT that does not conform (a protocol name
// other than MQTT, the reserved flag set) is closed on without a CONNACK [MQTT-3.1.4-1], by our
// broker as by Mosquitto. mochi answered 0x82, which 3.1.1 does not have.
func TestMalformedConnect311Closed(t *testing.T) {
	mqtx := rawmqtt.Connect{ID: "bad", Clean: true, KeepAlive: 30}.Packet()
	mqtx.Connect.ProtocolName = []byte("MQTX")
	for _, c := range []struct {
		name    string
		connect []byte
	}{
		{"protocol name MQTX", rawmqtt.Encode(mqtx)},
		{"reserved flag", rawmqtt.Frame(0x10, rawmqtt.String("MQTT"), []byte{4, 0x03, 0, 30}, rawmqtt.String("bad"))},
	} {
		t.Run(c.name, func(t *testing.T) {
			onBothBrokers(t, func(t *testing.T, rc *rawConn) {
				rc.send(t, c.connect)
				if pk, err := rawmqtt.Read(rc); err == nil {
					t.Errorf("got % x; want the connection closed without a CONNACK", pk)
				}
			})
		})
	}
}
