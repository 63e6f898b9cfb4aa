package tests

import (
	"bytes"
	"testing"

	"mqttdemo/mqttserver/rawmqtt"
)

// TestLongLengthsRefused: a length of more than four bytes is malformed (MQTT 5 §1.5.5), though
// mochi reads any number of them: our broker closes the connection, as Mosquitto does, without
// an answer, and serves the next client. Through such a PINGREQ a SUBSCRIBE without its options
// byte reached mochi's decoder, and the whole broker exited (mochi-mqtt/server#501); through a
// CONNECT's properties length, a Receive Maximum of 0 passed.
func TestLongLengthsRefused(t *testing.T) {
	connect5 := rawmqtt.Connect{ID: "long", Version: 5, Clean: true, KeepAlive: 30}.Encode()
	connect4 := rawmqtt.Connect{ID: "long", Clean: true, KeepAlive: 30}.Encode()
	longPing := []byte{0xc0, 0x80, 0x80, 0x80, 0x80, 0x00}
	noOptions := rawmqtt.Frame(0x82, []byte{0, 1, 0}, rawmqtt.String("a/b"))
	longConnect := append([]byte{0x10, 0x80 | byte(len(connect4)-2), 0x80, 0x80, 0x80, 0x00}, connect4[2:]...)
	longProps := rawmqtt.Frame(0x10, []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30, 0x83, 0x80, 0x80, 0x80, 0x00, 0x21, 0, 0},
		rawmqtt.String("long"))
	for _, c := range []struct {
		name     string
		connect  []byte // answered with CONNACK 0 when not nil
		then     []byte
		refusing bool // the CONNECT itself is refused, without a CONNACK
	}{
		{"a PINGREQ of six bytes, then a SUBSCRIBE without options, MQTT 5", connect5, append(bytes.Clone(longPing), noOptions...), false},
		{"a PINGREQ of six bytes, MQTT 3.1.1", connect4, longPing, false},
		{"a CONNECT whose length is five bytes", nil, longConnect, true},
		{"a CONNECT whose properties' length is five bytes, before a Receive Maximum 0", nil, longProps, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			onBothBrokers(t, func(t *testing.T, rc *rawConn) {
				if c.connect != nil {
					rc.send(t, c.connect)
					if ack := rc.read(t); len(ack) < 4 || ack[0] != 0x20 || ack[3] != 0 {
						t.Fatalf("CONNACK % x", ack)
					}
				}
				rc.send(t, c.then)
				if pk, err := rawmqtt.Read(rc); err == nil {
					t.Errorf("got % x; want the connection closed", pk)
				}
				dialRaw(t, rc.RemoteAddr().String(), "next", 0) // the broker still serves
			})
		})
	}
}
