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
	connect5 := &rawmqtt.Connect{ID: "long", Version: 5, Clean: true, KeepAlive: 30}
	connect4 := &rawmqtt.Connect{ID: "long", Clean: true, KeepAlive: 30}
	raw4 := connect4.Encode()
	longPing := []byte{0xc0, 0x80, 0x80, 0x80, 0x80, 0x00}
	noOptions := rawmqtt.Frame(0x82, []byte{0, 1, 0}, rawmqtt.String("a/b"))
	longConnect := append([]byte{0x10, 0x80 | byte(len(raw4)-2), 0x80, 0x80, 0x80, 0x00}, raw4[2:]...)
	longProps := rawmqtt.Frame(0x10, []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30, 0x83, 0x80, 0x80, 0x80, 0x00, 0x21, 0, 0},
		rawmqtt.String("long"))
	for _, c := range []struct {
		name    string
		connect *rawmqtt.Connect // accepted first, when not nil
		then    []byte
	}{
		{"a PINGREQ of six bytes, then a SUBSCRIBE without options, MQTT 5", connect5, append(bytes.Clone(longPing), noOptions...)},
		{"a PINGREQ of six bytes, MQTT 3.1.1", connect4, longPing},
		{"a CONNECT whose length is five bytes", nil, longConnect},
		{"a CONNECT whose properties' length is five bytes, before a Receive Maximum 0", nil, longProps},
	} {
		t.Run(c.name, func(t *testing.T) {
			onBothBrokers(t, func(t *testing.T, rc *rawConn) {
				if c.connect != nil {
					rc.connect(t, *c.connect)
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
