package mqttclient

import (
	"bytes"
	"fmt"
	"net"
	"strings"
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
		c := &qos2Conn{onPubrec: func(id uint16) { got = append(got, id) }}
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

// recorder is the network under a qos2Conn: it keeps what is written.
type recorder struct {
	net.Conn
	written [][]byte
}

func (r *recorder) Write(p []byte) (int, error) {
	r.written = append(r.written, bytes.Clone(p))
	return len(p), nil
}

func packetBytes(t *testing.T, p packets.ControlPacket) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestQoS2ConnCarriesPublishOnce replays what paho v1.5.1 does when a Publish races with a
// reconnect: the message goes out from Publish, and again, marked DUP, from the store. A
// connection carries the PUBLISH once; a copy that comes after PUBREC (or after PUBCOMP, when
// Mosquitto would take it for a new message) goes out as the PUBREL.
func TestQoS2ConnCarriesPublishOnce(t *testing.T) {
	s := NewStore(mqtt.NewOrderedMemoryStore())
	s.Open()
	net1 := new(recorder)
	c := &qos2Conn{Conn: net1, store: s, onPubrec: s.released, carried: make(map[uint16]uint64)}
	write := func(p packets.ControlPacket) {
		t.Helper()
		b := packetBytes(t, p)
		if n, err := c.Write(b); n != len(b) || err != nil {
			t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(b))
		}
	}
	resend := func(key string) *packets.PublishPacket { // as paho's resume does
		p := s.Get(key).(*packets.PublishPacket)
		p.Dup = true
		return p
	}
	pub := publishPacket(66, "66")
	pub.Qos = 2
	s.Put("o.66", pub)
	first := packetBytes(t, pub)
	write(pub)
	write(resend("o.66")) // before PUBREC: the broker has the first copy
	c.scan([]byte{0x50, 0x02, 0x00, 66})
	write(marked(pub)) // after PUBREC: a PUBLISH now would be a new message
	s.Del("o.66")      // PUBCOMP
	write(marked(pub)) // after PUBCOMP, the case Mosquitto delivered twice
	again := publishPacket(66, "66")
	again.Qos = 2
	s.Put("o.66", again) // the id used again, even for the same text: a new message
	write(again)
	one := publishPacket(67, "qos 1")
	write(one)
	write(one) // QoS 1 is not this connection's business

	pubrel := []byte{0x62, 0x02, 0x00, 66}
	want := [][]byte{first, pubrel, pubrel, packetBytes(t, again), packetBytes(t, one), packetBytes(t, one)}
	if fmt.Sprint(net1.written) != fmt.Sprint(want) {
		t.Errorf("written:\n%v\nwant:\n%v", net1.written, want)
	}

	// A new connection carries the stored PUBLISH again: the broker may not have it.
	net2 := new(recorder)
	c2 := &qos2Conn{Conn: net2, store: s, onPubrec: s.released, carried: make(map[uint16]uint64)}
	b := packetBytes(t, resend("o.66"))
	if _, err := c2.Write(b); err != nil || len(net2.written) != 1 || !bytes.Equal(net2.written[0], b) {
		t.Errorf("after a reconnect: written %v, want the PUBLISH", net2.written)
	}

	// On a new connection the broker may resend its PUBREC at once (mochi does), and the
	// exchange end (PUBREL, PUBCOMP) before paho's resume writes the PUBLISH it read from the
	// store: that PUBLISH would be a new message to the broker.
	net3 := new(recorder)
	c3 := &qos2Conn{Conn: net3, store: s, onPubrec: s.released, carried: make(map[uint16]uint64)}
	stale := resend("o.66")
	c3.scan([]byte{0x50, 0x02, 0x00, 66})
	s.Del("o.66") // PUBCOMP
	if _, err := c3.Write(packetBytes(t, stale)); err != nil || fmt.Sprint(net3.written) != fmt.Sprint([][]byte{pubrel}) {
		t.Errorf("a PUBLISH finished before resume wrote it: written %v, want only a PUBREL", net3.written)
	}
}

// marked is a copy of p marked DUP: what paho's resume sends.
func marked(p *packets.PublishPacket) *packets.PublishPacket {
	c := *p
	c.Dup = true
	return &c
}

func TestQoS2PublishID(t *testing.T) {
	long := publishPacket(513, strings.Repeat("x", 300)) // remaining length in two bytes
	long.Qos = 2
	short := publishPacket(9, "")
	short.Qos = 2
	for _, c := range []struct {
		name string
		p    []byte
		id   uint16
		ok   bool
	}{
		{"long", packetBytes(t, long), 513, true},
		{"empty payload", packetBytes(t, short), 9, true},
		{"qos 1", packetBytes(t, publishPacket(4, "x")), 0, false},
		{"cut", packetBytes(t, long)[:20], 0, false},
		{"pubrel", []byte{0x62, 0x02, 0x00, 0x01}, 0, false},
		{"nothing", nil, 0, false},
	} {
		id, ok := qos2PublishID(c.p)
		if id != c.id || ok != c.ok {
			t.Errorf("%s: qos2PublishID = %d, %v; want %d, %v", c.name, id, ok, c.id, c.ok)
		}
	}
}

func TestItoa(t *testing.T) {
	for _, n := range []uint16{0, 7, 10, 65535} {
		if got := itoa(n); got != fmt.Sprint(n) {
			t.Errorf("itoa(%d) = %q", n, got)
		}
	}
}

var _ net.Conn = (*qos2Conn)(nil)
