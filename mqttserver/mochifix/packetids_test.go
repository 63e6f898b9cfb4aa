package mochifix

import (
	"testing"

	"mqttdemo/mqttserver/internal/bare"
	"mqttdemo/mqttserver/rawmqtt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// idClashes are the client's packets that carry the id of a message the broker is sending it.
var idClashes = []struct {
	name string
	pk   func(id uint16) []byte
}{
	{"subscribe", func(id uint16) []byte { return rawmqtt.Subscribe(id, "other", 0) }},
	{"publish-qos1", func(id uint16) []byte { return rawmqtt.Publish("other", 1, id, []byte("theirs")) }},
	{"publish-qos2", func(id uint16) []byte { return rawmqtt.Publish("other", 2, id, []byte("theirs")) }},
	{"pubrel-of-nothing", func(id uint16) []byte { return rawmqtt.Ack(packets.Pubrel, id) }},
}

// TestCanaryOneMapForBothSidesIDs shows the flaw PacketIDs mends on a bare mochi server: a
// client's packet with the id of the broker's message in flight to it is refused (SUBSCRIBE:
// 0x80 in MQTT 3.1.1, 0x91 in 5) or takes the message's place, which is never resent.
func TestCanaryOneMapForBothSidesIDs(t *testing.T) {
	for _, c := range idClashes {
		t.Run(c.name, func(t *testing.T) {
			server, addr := bare.Serve(t, &mqtt.Options{InlineClient: true})
			refused, resent := clashIDs(t, server, addr, c.pk)
			if !refused && resent {
				t.Errorf("mochi no longer shows one map for both sides' packet ids: the mend in packetids.go may go (see doc.go)")
			}
		})
	}
}

// TestPacketIDsKeepsBothSidesApart: with PacketIDs, the client's packet is answered under its
// id and the broker's message is resent.
func TestPacketIDsKeepsBothSidesApart(t *testing.T) {
	for _, c := range idClashes {
		t.Run(c.name, func(t *testing.T) {
			server, addr := bare.ServeWith(t, &mqtt.Options{InlineClient: true},
				func(s *mqtt.Server) []mqtt.Hook { return []mqtt.Hook{NewPacketIDs(s)} })
			refused, resent := clashIDs(t, server, addr, c.pk)
			if refused {
				t.Error("the client's SUBSCRIBE was refused")
			}
			if !resent {
				t.Error("the broker's message was not resent")
			}
		})
	}
}

// clashIDs has a persistent-session client receive a QoS 1 message, leave it unacknowledged,
// send pk with its id, and come back. It reports whether a SUBSCRIBE was refused and whether
// the message came again.
func clashIDs(t *testing.T, server *mqtt.Server, addr string, pk func(uint16) []byte) (refused, resent bool) {
	t.Helper()
	conn := bare.Connect(t, addr, rawmqtt.Connect{ID: "clash"})
	bare.Exchange(t, conn, rawmqtt.Subscribe(1, "ours", 1), 0x90)
	if err := server.Publish("ours", []byte("ours"), false, 1); err != nil {
		t.Fatal(err)
	}
	ours := bare.ReadDecoded(t, conn)
	if ours.FixedHeader.Type != packets.Publish {
		t.Fatalf("want the broker's message, got %v", ours)
	}
	bare.Write(t, conn, pk(ours.PacketID))
	ans := bare.ReadDecoded(t, conn)
	if ans.PacketID != ours.PacketID {
		t.Errorf("the answer has id %d, want the client's %d", ans.PacketID, ours.PacketID)
	}
	refused = ans.FixedHeader.Type == packets.Suback && ans.ReasonCodes[0] >= 0x80
	conn.Close()

	back := bare.Connect(t, addr, rawmqtt.Connect{ID: "clash"})
	bare.Write(t, back, rawmqtt.Pingreq())
	for range 10 {
		got := bare.ReadDecoded(t, back)
		if got.FixedHeader.Type == packets.Pingresp {
			return refused, resent
		}
		resent = resent || got.FixedHeader.Type == packets.Publish && string(got.Payload) == "ours"
	}
	t.Fatal("no PINGRESP")
	return
}
