package shared

import (
	"fmt"
	"net"
	"testing"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// TestPubrecScan: PUBRECs are found in a byte stream however it is cut into reads, and other
// packets (a PUBLISH whose payload looks like a PUBREC, a long remaining length) are skipped.
func TestPubrecScan(t *testing.T) {
	var stream []byte
	stream = append(stream, 0x50, 0x02, 0x00, 0x07) // PUBREC 7
	body := make([]byte, 204)                       // remaining length 204 takes two bytes: 0xcc 0x01
	copy(body, []byte{0x50, 0x02, 0x00, 0x09})      // not a packet: inside the body
	pub := append([]byte{0x32, 0xcc, 0x01}, body...)
	stream = append(stream, pub...)
	stream = append(stream, 0xd0, 0x00)             // PINGRESP, no body
	stream = append(stream, 0x50, 0x02, 0x01, 0x02) // PUBREC 258
	for _, size := range []int{1, 2, 3, 7, len(stream)} {
		var got []uint16
		c := &pubrecConn{onPubrec: func(id uint16) { got = append(got, id) }}
		for i := 0; i < len(stream); i += size {
			c.scan(stream[i:min(i+size, len(stream))])
		}
		if fmt.Sprint(got) != "[7 258]" {
			t.Errorf("reads of %d bytes: PUBRECs %v, want [7 258]", size, got)
		}
	}
}

// TestReleasedKeepsPubrel: after PUBREC the store holds the PUBREL, which paho then resends
// instead of the PUBLISH; the acknowledgement still waits for PUBCOMP.
func TestReleasedKeepsPubrel(t *testing.T) {
	s := NewStore(mqtt.NewMemoryStore())
	s.Open()
	p := publishPacket(300, "x")
	p.Qos = 2
	s.Put("o.300", p)
	one := publishPacket(301, "y") // QoS 1: a PUBREC for its id is not ours to act on
	s.Put("o.301", one)
	s.released(300)
	s.released(301)
	if _, ok := s.Get("o.300").(*packets.PubrelPacket); !ok {
		t.Errorf("o.300 holds %T, want the PUBREL", s.Get("o.300"))
	}
	if _, ok := s.Get("o.301").(*packets.PublishPacket); !ok {
		t.Errorf("o.301 holds %T, want the QoS 1 PUBLISH untouched", s.Get("o.301"))
	}
	if ch, ok := s.Acked(300); !ok || isClosed(ch) {
		t.Error("a PUBREC acknowledged the message")
	}
}

func TestItoa(t *testing.T) {
	for _, n := range []uint16{0, 7, 10, 65535} {
		if got := itoa(n); got != fmt.Sprint(n) {
			t.Errorf("itoa(%d) = %q", n, got)
		}
	}
}

var _ net.Conn = (*pubrecConn)(nil)
