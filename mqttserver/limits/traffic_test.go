package limits

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
)

// TestWriteCounts: the connection layer counts the PUBLISH packets it writes by QoS, with their
// bytes, and not a QoS 0 copy it drops for a client that does not read; it counts a CONNACK that
// refuses by its reason code, as mochi encodes it for MQTT 3.1.1 and 5 (a reason string makes
// the MQTT 5 one longer), and not one that accepts; it times the tagged copy it expects when it
// writes it, and not when it drops it.
func TestWriteCounts(t *testing.T) {
	connack := func(version, code byte, reason string) []byte {
		return rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ProtocolVersion: version,
			ReasonCode: code, Properties: packets.Properties{ReasonString: reason}})
	}
	long := strings.Repeat("r", 200) // remaining length over 127: two length bytes
	pub0 := rawmqtt.Publish("t/0", 0, 0, []byte("hi"))
	for _, c := range []struct {
		name     string
		p        []byte
		behind   bool // the client reads nothing: QoS 0 copies are dropped
		expect   *tagged
		sent     [3]int64
		refused  map[byte]int64
		timed    int64
		expected bool // a tagged copy still expected after the write
	}{
		{"QoS 0", pub0, false, nil, [3]int64{1, 0, 0}, nil, 0, false},
		{"QoS 0 dropped", pub0, true, nil, [3]int64{}, nil, 0, false},
		{"QoS 1 while behind", rawmqtt.Publish("t/1", 1, 7, []byte("hi")), true, nil, [3]int64{0, 1, 0}, nil, 0, false},
		{"QoS 2", rawmqtt.Publish("t/2", 2, 8, []byte(long)), false, nil, [3]int64{0, 0, 1}, nil, 0, false},
		{"CONNACK accepting", connack(4, 0, ""), false, nil, [3]int64{}, nil, 0, false},
		{"CONNACK 3.1.1 not authorised", connack(4, packets.Err3NotAuthorized.Code, ""), false, nil, [3]int64{},
			map[byte]int64{5: 1}, 0, false},
		{"CONNACK 3.1.1 bad user name or password", connack(4, packets.ErrMalformedUsernameOrPassword.Code, ""), false, nil,
			[3]int64{}, map[byte]int64{4: 1}, 0, false},
		{"CONNACK 5 bad credentials", connack(5, packets.ErrBadUsernameOrPassword.Code, ""), false, nil, [3]int64{},
			map[byte]int64{0x86: 1}, 0, false},
		{"CONNACK 5 with a long reason string", connack(5, packets.ErrServerBusy.Code, long), false, nil, [3]int64{},
			map[byte]int64{0x89: 1}, 0, false},
		{"tagged copy written", pub0, false, &tagged{topic: "t/0"}, [3]int64{1, 0, 0}, nil, 1, false},
		{"tagged copy dropped", pub0, true, &tagged{topic: "t/0"}, [3]int64{}, nil, 0, false},
		{"another copy than the tagged one", pub0, false, &tagged{topic: "t/x"}, [3]int64{1, 0, 0}, nil, 0, true},
		{"tagged QoS 1, another id", rawmqtt.Publish("t/1", 1, 7, []byte("hi")), false, &tagged{qos: 1, id: 9, topic: "t/1"},
			[3]int64{0, 1, 0}, nil, 0, true},
		{"tagged QoS 1 written", rawmqtt.Publish("t/1", 1, 9, []byte("hi")), true, &tagged{qos: 1, id: 9, topic: "t/1"},
			[3]int64{0, 1, 0}, nil, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			server := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
			traffic := NewTraffic()
			f := NewFlowControl(server, DefaultLimits(), traffic, slog.New(slog.DiscardHandler))
			fc := &flowConn{flow: f, running: true} // what is written waits in pending
			if c.behind {
				fc.pending, fc.unsent = net.Buffers{make([]byte, f.qos0)}, f.qos0
				fc.writeSince.Store(int64(time.Since(epoch) - 2*behindAfter))
			}
			if c.expect != nil {
				fc.tagged = *c.expect
				fc.tagged.tag = traffic.latency.stamp()
			}
			if _, err := fc.Write(c.p); err != nil {
				t.Fatal(err)
			}
			messages, bytes := traffic.Sent()
			if messages != c.sent {
				t.Errorf("sent %v, want %v", messages, c.sent)
			}
			for q := range bytes {
				if want := c.sent[q] * int64(len(c.p)); bytes[q] != want {
					t.Errorf("QoS %d: %d bytes sent, want %d", q, bytes[q], want)
				}
			}
			for code := range 256 {
				if got := traffic.Refused(byte(code)); got != c.refused[byte(code)] {
					t.Errorf("refused with 0x%02x: %d, want %d", code, got, c.refused[byte(code)])
				}
			}
			buckets, _ := traffic.Latency()
			var timed int64
			for _, n := range buckets {
				timed += n
			}
			if timed != c.timed {
				t.Errorf("timed %d, want %d", timed, c.timed)
			}
			if expected := fc.tagged.tag != 0; expected != c.expected {
				t.Errorf("a tagged copy still expected: %v, want %v", expected, c.expected)
			}
		})
	}
}
