package tests

import (
	"bytes"
	"testing"

	"mqttdemo/mqttserver/rawmqtt"
)

// TestMalformedPackets5: a malformed MQTT 5 SUBSCRIBE, or a PUBLISH of QoS 3, ends its connection
// with DISCONNECT 0x81 (malformed packet), on our broker as on Mosquitto, also when it comes in one
// write with the CONNECT, and the broker serves the next client. A filter without its options
// byte made mochi panic and the whole broker exit (mochi-mqtt/server#501); reserved option bits
// and Retain Handling 3 were granted; QoS 3 closed the connection without a word.
func TestMalformedPackets5(t *testing.T) {
	sub := func(body ...byte) []byte { return rawmqtt.Frame(0x82, []byte{0, 1, 0}, body) }
	connect := rawmqtt.Connect{ID: "bad", Version: 5, Clean: true, KeepAlive: 30}.Encode()
	for _, c := range []struct {
		name   string
		packet []byte
	}{
		{"a filter without its options byte", sub(0, 1, 'a')},
		{"an empty filter without its options byte", sub(0, 0)},
		{"the second filter without its options byte", sub(0, 1, 'a', 1, 0, 1, 'b')},
		{"reserved option bits", sub(0, 1, 'a', 0xc1)},
		{"retain handling 3", sub(0, 1, 'a', 0x31)},
		{"a PUBLISH of QoS 3", rawmqtt.Frame(0x36, rawmqtt.String("a"), []byte{0, 1, 0}, []byte("x"))},
	} {
		for _, pipelined := range []bool{false, true} {
			name := c.name
			if pipelined {
				name += ", in one write with the CONNECT"
			}
			t.Run(name, func(t *testing.T) {
				onBothBrokers(t, func(t *testing.T, rc *rawConn) {
					if pipelined {
						rc.send(t, append(bytes.Clone(connect), c.packet...))
					} else {
						rc.send(t, connect)
					}
					if ack := rc.read(t); len(ack) < 4 || ack[0] != 0x20 || ack[3] != 0 {
						t.Fatalf("CONNACK % x", ack)
					}
					if !pipelined {
						rc.send(t, c.packet)
					}
					if got := rc.read(t); !bytes.Equal(got, []byte{0xe0, 1, 0x81}) {
						t.Errorf("answer % x, want DISCONNECT 0x81 (e0 01 81)", got)
					}
					if !closedByPeer(rc.Conn) {
						t.Error("the connection stayed open")
					}
					dialRaw(t, rc.RemoteAddr().String(), "next", 0) // the broker still serves
				})
			})
		}
	}
}
