package rawmqtt

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestRoundTrip decodes what each builder encodes with mochi's decoder.
func TestRoundTrip(t *testing.T) {
	props := packets.Properties{SessionExpiryInterval: 60, SessionExpiryIntervalFlag: true}
	for _, c := range []struct {
		name    string
		raw     []byte
		version byte
		check   func(packets.Packet) bool
	}{
		{"connect", Connect{ID: "a", Clean: true, KeepAlive: 30}.Encode(), 4, func(pk packets.Packet) bool {
			return pk.Connect.ClientIdentifier == "a" && pk.Connect.Clean && pk.Connect.Keepalive == 30 &&
				pk.ProtocolVersion == 4 && !pk.Connect.UsernameFlag && !pk.Connect.WillFlag
		}},
		{"connect user will", Connect{ID: "b", User: "u", Password: "p", WillTopic: "w", WillPayload: []byte("x"), WillQoS: 1, WillRetain: true}.Encode(), 4,
			func(pk packets.Packet) bool {
				c := pk.Connect
				return string(c.Username) == "u" && string(c.Password) == "p" && c.WillFlag && c.WillTopic == "w" &&
					string(c.WillPayload) == "x" && c.WillQos == 1 && c.WillRetain && !c.Clean
			}},
		{"connect v5", Connect{ID: "c", Version: 5, Properties: props}.Encode(), 5, func(pk packets.Packet) bool {
			return pk.ProtocolVersion == 5 && pk.Properties.SessionExpiryInterval == 60
		}},
		{"subscribe", Subscribe(7, "a/+", 2), 4, func(pk packets.Packet) bool {
			return pk.PacketID == 7 && len(pk.Filters) == 1 && pk.Filters[0].Filter == "a/+" && pk.Filters[0].Qos == 2
		}},
		{"publish qos 0", Publish("a/b", 0, 9, []byte("m")), 4, func(pk packets.Packet) bool {
			return pk.TopicName == "a/b" && pk.FixedHeader.Qos == 0 && pk.PacketID == 0 && string(pk.Payload) == "m"
		}},
		{"publish qos 2", Publish("a/b", 2, 9, []byte("m")), 4, func(pk packets.Packet) bool {
			return pk.FixedHeader.Qos == 2 && pk.PacketID == 9 && string(pk.Payload) == "m"
		}},
		{"pubrel", Ack(packets.Pubrel, 300), 4, func(pk packets.Packet) bool {
			return pk.FixedHeader.Type == packets.Pubrel && pk.PacketID == 300
		}},
		{"puback", Ack(packets.Puback, 1), 4, func(pk packets.Packet) bool { return pk.PacketID == 1 }},
		{"pingreq", Pingreq(), 4, func(pk packets.Packet) bool { return pk.FixedHeader.Type == packets.Pingreq }},
		{"disconnect", Disconnect(), 4, func(pk packets.Packet) bool { return pk.FixedHeader.Type == packets.Disconnect }},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw, err := Read(bytes.NewReader(c.raw))
			if err != nil || !bytes.Equal(raw, c.raw) {
				t.Fatalf("Read(% x) = % x, %v", c.raw, raw, err)
			}
			pk, err := Decode(raw, c.version)
			if err != nil {
				t.Fatalf("decode % x: %v", raw, err)
			}
			if !c.check(pk) {
				t.Errorf("% x decodes as %+v", raw, pk)
			}
		})
	}
}

// TestWireBytes pins a few encodings to the bytes MQTT 3.1.1 specifies.
func TestWireBytes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want []byte
	}{
		{"connect", Connect{ID: "id", Clean: true}.Encode(), []byte{0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0, 2, 'i', 'd'}},
		{"subscribe", Subscribe(1, "t", 1), []byte{0x82, 6, 0, 1, 0, 1, 't', 1}},
		{"publish", Publish("t", 1, 5, []byte("x")), []byte{0x32, 6, 0, 1, 't', 0, 5, 'x'}},
		{"pubrel", Ack(packets.Pubrel, 5), []byte{0x62, 2, 0, 5}},
		{"pingreq", Pingreq(), []byte{0xc0, 0}},
		{"disconnect", Disconnect(), []byte{0xe0, 0}},
		{"frame", Frame(0x80, []byte{0, 1}, String("t")), []byte{0x80, 5, 0, 1, 0, 1, 't'}},
	} {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s: % x, want % x", c.name, c.got, c.want)
		}
	}
}

// TestFrameLength checks the remaining length at the edges of its 1 to 4 byte encodings.
func TestFrameLength(t *testing.T) {
	for _, n := range []int{0, 127, 128, 16383, 16384, 2097151, 2097152} {
		raw := Frame(0x30, make([]byte, n))
		got, used, err := packets.DecodeLength(bytes.NewReader(raw[1:]))
		if err != nil || got != n || len(raw) != 1+used+n {
			t.Errorf("length %d: decoded %d from %d bytes (%v)", n, got, used, err)
		}
	}
}

// TestReadStopsAtPacket: Read takes one packet from a bare reader and leaves the next.
func TestReadStopsAtPacket(t *testing.T) {
	r := strings.NewReader(string(Pingreq()) + string(Disconnect()))
	if pk, err := Read(r); err != nil || !bytes.Equal(pk, Pingreq()) {
		t.Fatalf("first packet % x, %v", pk, err)
	}
	if pk, err := Read(r); err != nil || !bytes.Equal(pk, Disconnect()) {
		t.Fatalf("second packet % x, %v", pk, err)
	}
	if _, err := Read(r); err != io.EOF {
		t.Errorf("after the last packet: %v, want EOF", err)
	}
	if _, err := Read(bytes.NewReader([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01})); err == nil {
		t.Error("five length bytes read without error")
	}
	if _, err := Read(bytes.NewReader(Publish("a", 0, 0, []byte("xyz"))[:5])); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated packet: %v, want unexpected EOF", err)
	}
}

func TestReaderNext(t *testing.T) {
	wire := bytes.Join([][]byte{Publish("a/b", 1, 7, []byte("m")), Ack(packets.Pubrel, 8)}, nil)
	r := NewReader(bufio.NewReader(bytes.NewReader(wire)))
	fh, body, err := r.Next()
	if err != nil || fh.Type != packets.Publish || fh.Qos != 1 || fh.Remaining != len(body) {
		t.Fatalf("first: %+v, % x, %v", fh, body, err)
	}
	pk := packets.Packet{FixedHeader: fh}
	if err := pk.PublishDecode(body); err != nil || pk.PacketID != 7 || string(pk.Payload) != "m" {
		t.Errorf("publish body % x: %+v, %v", body, pk, err)
	}
	if fh, body, err = r.Next(); err != nil || fh.Type != packets.Pubrel || !bytes.Equal(body, []byte{0, 8}) {
		t.Errorf("second: %+v, % x, %v", fh, body, err)
	}
}

func TestEncodeRefusedPacketIsNil(t *testing.T) {
	for name, got := range map[string][]byte{
		"QoS 1 PUBLISH without packet id": Publish("a", 1, 0, nil),
		"SUBSCRIBE without packet id":     Subscribe(0, "a", 0),
		"unknown type":                    Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: 0}}),
	} {
		if got != nil {
			t.Errorf("%s encoded as % x", name, got)
		}
	}
}

func TestDecodeChecksLength(t *testing.T) {
	if _, err := Decode([]byte{0x20, 3, 0, 0}, 4); err == nil {
		t.Error("a CONNACK shorter than its remaining length decoded")
	}
	pk, err := Decode([]byte{0x20, 2, 1, 5}, 4)
	if err != nil || pk.FixedHeader.Type != packets.Connack || !pk.SessionPresent || pk.ReasonCode != 5 {
		t.Errorf("CONNACK: %+v, %v", pk, err)
	}
}
