package broker

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
)

// TestConnectZeroLimitsRefused: an MQTT 5 CONNECT with Receive Maximum 0 or Maximum Packet Size
// 0 is a protocol error (MQTT 5 §3.1.2.11.3, §3.1.2.11.4): the connection is closed without a
// CONNACK, as Mosquitto 2.0.11 does (issue 21 item 10). mochi reads both as absent. A CONNECT
// that gives a property twice that may be given once is refused the same way.
func TestConnectZeroLimitsRefused(t *testing.T) {
	b, _ := startBroker(t, Config{})
	for _, c := range []struct {
		name    string
		props   []byte
		refused bool
	}{
		{"receive maximum 0", []byte{packets.PropReceiveMaximum, 0, 0}, true},
		{"maximum packet size 0", []byte{packets.PropMaximumPacketSize, 0, 0, 0, 0}, true},
		{"maximum packet size 0 after a user property", []byte{packets.PropUser, 0, 1, 'k', 0, 1, 'v',
			packets.PropMaximumPacketSize, 0, 0, 0, 0}, true},
		{"both absent", nil, false},
		{"receive maximum 1", []byte{packets.PropReceiveMaximum, 0, 1}, false},
		{"maximum packet size 1024", []byte{packets.PropMaximumPacketSize, 0, 0, 4, 0}, false},
		{"session expiry twice", []byte{packets.PropSessionExpiryInterval, 0, 0, 0, 1, packets.PropSessionExpiryInterval, 0, 0, 0, 9}, true},
		{"a user property twice", []byte{packets.PropUser, 0, 1, 'k', 0, 1, 'v', packets.PropUser, 0, 1, 'k', 0, 1, 'v'}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", b.Addr(), waitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(waitTimeout))
			vh := []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, byte(len(c.props))}
			if _, err := conn.Write(rawmqtt.Frame(0x10, vh, c.props, rawmqtt.String(t.Name()))); err != nil {
				t.Fatal(err)
			}
			raw, err := rawmqtt.Read(conn)
			closed := errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
			switch {
			case c.refused && !closed:
				t.Errorf("got % x (%v); want the connection closed without a CONNACK", raw, err)
			case !c.refused && (err != nil || len(raw) < 4 || raw[0] != 0x20 || raw[3] != 0):
				t.Errorf("got % x (%v); want CONNACK accepted", raw, err)
			}
		})
	}
}
