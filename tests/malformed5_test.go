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

// TestPropertyGivenTwiceRefused: a property that may be given once, given twice in a CONNECT's
// properties or in its will's, is a protocol error (MQTT 5 §3.1.2.11, §3.1.3.2): the connection
// is closed without a CONNACK, on our broker as on Mosquitto. mochi took the last value. A user
// property may repeat.
func TestPropertyGivenTwiceRefused(t *testing.T) {
	expiry := []byte{0x02, 0, 0, 0, 5}         // Message Expiry Interval
	session := []byte{0x11, 0, 0, 0, 9}        // Session Expiry Interval
	delay := []byte{0x18, 0, 0, 0, 1}          // Will Delay Interval
	user := []byte{0x26, 0, 1, 'k', 0, 1, 'v'} // User Property
	twice := func(p []byte) []byte { return append(bytes.Clone(p), p...) }
	for _, c := range []struct {
		name            string
		props, willProp []byte // willProp nil: no will
		refused         bool
	}{
		{"session expiry twice", twice(session), nil, true},
		{"will: message expiry twice", nil, twice(expiry), true},
		{"will: delay twice, a user property between", nil, append(append(bytes.Clone(delay), user...), delay...), true},
		{"will: a user property twice", nil, twice(user), false},
		{"each once, in the CONNECT's and the will's", session, append(bytes.Clone(expiry), delay...), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			flags, payload := byte(0x02), rawmqtt.String("twice")
			if c.willProp != nil {
				flags |= 0x04
				payload = bytes.Join([][]byte{payload, {byte(len(c.willProp))}, c.willProp,
					rawmqtt.String("will/t"), rawmqtt.String("bye")}, nil)
			}
			connect := rawmqtt.Frame(0x10, []byte{0, 4, 'M', 'Q', 'T', 'T', 5, flags, 0, 30, byte(len(c.props))}, c.props, payload)
			onBothBrokers(t, func(t *testing.T, rc *rawConn) {
				rc.send(t, connect)
				pk, err := rawmqtt.Read(rc)
				switch {
				case c.refused && err == nil:
					t.Errorf("got % x; want the connection closed without a CONNACK", pk)
				case !c.refused && (err != nil || len(pk) < 4 || pk[0] != 0x20 || pk[3] != 0):
					t.Errorf("got % x (%v); want a CONNACK that accepts", pk, err)
				}
			})
		})
	}
}
