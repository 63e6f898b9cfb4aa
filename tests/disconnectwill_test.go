package tests

import (
	"fmt"
	"testing"

	"mqttdemo/mqttserver/rawmqtt"
)

// TestShortDisconnectWithWill: an MQTT 5 DISCONNECT of one byte, the reason code alone, as
// mosquitto_pub and mosquitto_sub send it: 0x04 (disconnect with will message) publishes the
// client's will, 0x00 does not, on our broker as on Mosquitto. mochi read no reason code from
// a DISCONNECT that short, and dropped the will.
func TestShortDisconnectWithWill(t *testing.T) {
	for _, c := range []struct {
		reason byte
		will   bool
	}{{0x04, true}, {0x00, false}} {
		t.Run(fmt.Sprintf("reason %#02x", c.reason), func(t *testing.T) {
			onBothBrokers(t, func(t *testing.T, rc *rawConn) {
				addr := rc.RemoteAddr().String()
				sub := dialRaw(t, addr, "watcher", 0)
				sub.subscribe(t, "w/z")
				rc.connect(t, rawmqtt.Connect{ID: "leaver", Version: 5, Clean: true, KeepAlive: 30,
					WillTopic: "w/z", WillPayload: []byte("will")})
				rc.send(t, []byte{0xe0, 1, c.reason})
				if !closedByPeer(rc.Conn) {
					t.Fatal("the connection stayed open after DISCONNECT")
				}
				pub := dialRaw(t, addr, "sentinel", 0) // after any will: a broker reads and publishes in order
				pub.send(t, rawmqtt.Publish("w/z", 0, 0, []byte("sentinel")))
				var got []string
				for len(got) == 0 || got[len(got)-1] != "sentinel" {
					pk, err := rawmqtt.Decode(sub.read(t), 4)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, string(pk.Payload))
				}
				if want := map[bool]int{true: 2, false: 1}[c.will]; len(got) != want || c.will && got[0] != "will" {
					t.Errorf("the watcher got %q; want the will: %v", got, c.will)
				}
			})
		})
	}
}
