package mochifix

import (
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"mqttdemo/mqttserver/rawmqtt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
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
}

// TestCanaryOneMapForBothSidesIDs shows the flaw PacketIDs mends on a bare mochi server: a
// client's packet with the id of the broker's message in flight to it is refused (SUBSCRIBE:
// 0x80 in MQTT 3.1.1, 0x91 in 5) or takes the message's place, which is never resent.
func TestCanaryOneMapForBothSidesIDs(t *testing.T) {
	for _, c := range idClashes {
		t.Run(c.name, func(t *testing.T) {
			server, addr := serveWith(t)
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
			server, addr := serveWith(t, func(s *mqtt.Server) mqtt.Hook { return NewPacketIDs(s) })
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
	conn := dialConnect(t, addr, "clash")
	exchange(t, conn, rawmqtt.Subscribe(1, "ours", 1))
	if err := server.Publish("ours", []byte("ours"), false, 1); err != nil {
		t.Fatal(err)
	}
	ours := readPacket(t, conn)
	if ours.FixedHeader.Type != packets.Publish {
		t.Fatalf("want the broker's message, got %v", ours)
	}
	ans := exchange(t, conn, pk(ours.PacketID))
	if ans.PacketID != ours.PacketID {
		t.Errorf("the answer has id %d, want the client's %d", ans.PacketID, ours.PacketID)
	}
	refused = ans.FixedHeader.Type == packets.Suback && ans.ReasonCodes[0] >= 0x80
	conn.Close()

	back := dialConnect(t, addr, "clash")
	if _, err := back.Write(rawmqtt.Pingreq()); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		got := readPacket(t, back)
		if got.FixedHeader.Type == packets.Pingresp {
			return refused, resent
		}
		resent = resent || got.FixedHeader.Type == packets.Publish && string(got.Payload) == "ours"
	}
	t.Fatal("no PINGRESP")
	return
}

// serveWith serves a bare mochi server, open to anyone, with the hooks made by hooks first.
func serveWith(t *testing.T, hooks ...func(*mqtt.Server) mqtt.Hook) (*mqtt.Server, string) {
	t.Helper()
	server := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler), InlineClient: true})
	for _, h := range hooks {
		if err := server.AddHook(h(server), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := server.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Close() })
	return server, tcp.Address()
}

// dialConnect connects an MQTT 3.1.1 client with a persistent session.
func dialConnect(t *testing.T, addr, id string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if ack := exchange(t, conn, rawmqtt.Connect{ID: id, KeepAlive: 60}.Encode()); ack.FixedHeader.Type != packets.Connack {
		t.Fatalf("want CONNACK, got %v", ack)
	}
	return conn
}

func exchange(t *testing.T, conn net.Conn, pk []byte) packets.Packet {
	t.Helper()
	if _, err := conn.Write(pk); err != nil {
		t.Fatal(err)
	}
	return readPacket(t, conn)
}

func readPacket(t *testing.T, conn net.Conn) packets.Packet {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	raw, err := rawmqtt.Read(conn)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := rawmqtt.Decode(raw, 4)
	if err != nil {
		t.Fatal(fmt.Errorf("decode % x: %w", raw, err))
	}
	return pk
}
