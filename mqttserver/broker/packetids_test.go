package broker

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"mqttdemo/mqttserver/rawmqtt"

	"github.com/mochi-mqtt/server/v2/packets"
)

// rawClient speaks one MQTT version with packets, for tests that choose every packet id.
type rawClient struct {
	t       *testing.T
	conn    net.Conn
	version byte
}

func dialRawClient(t *testing.T, addr, id string, version byte) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, version: version}
	cn := rawmqtt.Connect{ID: id, Version: version, KeepAlive: 60}
	if version == 5 {
		cn.Properties.SessionExpiryInterval, cn.Properties.SessionExpiryIntervalFlag = 3600, true
	}
	c.write(cn.Packet())
	if pk := c.next(); pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0 {
		t.Fatalf("CONNACK: got %v", pk)
	}
	return c
}

func (c *rawClient) write(pk packets.Packet) {
	c.t.Helper()
	pk.ProtocolVersion = c.version
	_ = c.conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := c.conn.Write(rawmqtt.Encode(pk)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) next() packets.Packet {
	c.t.Helper()
	_ = c.conn.SetDeadline(time.Now().Add(waitTimeout))
	raw, err := rawmqtt.Read(c.conn)
	if err != nil {
		c.t.Fatal(err)
	}
	pk, err := rawmqtt.Decode(raw, c.version)
	if err != nil {
		c.t.Fatalf("decode % x: %v", raw, err)
	}
	return pk
}

// until reads packets up to the PINGRESP that answers a PINGREQ sent now: the broker reads it
// after it has sent what it had to send.
func (c *rawClient) untilPing() []packets.Packet {
	c.t.Helper()
	c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	var got []packets.Packet
	for range 100 {
		pk := c.next()
		if pk.FixedHeader.Type == packets.Pingresp {
			return got
		}
		got = append(got, pk)
	}
	c.t.Fatalf("no PINGRESP after %d packets", len(got))
	return nil
}

func publish(topic string, qos byte, id uint16) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName: topic, PacketID: id, Payload: []byte(topic)}
}

// topics lists the topics of the PUBLISH packets in pks, sorted, with their QoS.
func topics(pks []packets.Packet) []string {
	var out []string
	for _, pk := range pks {
		if pk.FixedHeader.Type == packets.Publish {
			out = append(out, fmt.Sprintf("%s@%d", pk.TopicName, pk.FixedHeader.Qos))
		}
	}
	slices.Sort(out)
	return out
}

// TestClientIDsApartFromBrokerIDs: each side of a connection chooses its own packet ids
// (MQTT-2.3.1). A client with a persistent session subscribes to TopicA/# at QoS 2, publishes
// QoS 1 to TopicA/B and QoS 2 to TopicA/C with the id the broker gave its copy of the first,
// acknowledges nothing, and comes back: both messages must come again, as Mosquitto and bare
// mochi do. (The PUBREC state of the client's QoS 2 PUBLISH took the place of the broker's
// message under the same id.) The client's QoS 2 exchange goes on under its own id.
func TestClientIDsApartFromBrokerIDs(t *testing.T) {
	for _, c := range []struct {
		version byte
		data    bool
	}{{4, false}, {5, false}, {4, true}, {5, true}} {
		t.Run(fmt.Sprintf("v%d/data=%v", c.version, c.data), func(t *testing.T) {
			cfg := Config{}
			if c.data {
				cfg.DataDir = t.TempDir()
			}
			b, _ := startBroker(t, cfg)
			cl := dialRawClient(t, b.Addr(), "clash", c.version)
			cl.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
				Filters: packets.Subscriptions{{Filter: "TopicA/#", Qos: 2}}})
			if pk := cl.next(); pk.FixedHeader.Type != packets.Suback || pk.PacketID != 1 {
				t.Fatalf("want SUBACK 1, got %v", pk)
			}
			cl.write(publish("TopicA/B", 1, 2))
			var ours uint16 // the id of the broker's copy of TopicA/B
			for _, pk := range []packets.Packet{cl.next(), cl.next()} {
				switch pk.FixedHeader.Type {
				case packets.Puback:
					if pk.PacketID != 2 {
						t.Fatalf("PUBACK %d, want 2", pk.PacketID)
					}
				case packets.Publish:
					ours = pk.PacketID
				}
			}
			if ours == 0 {
				t.Fatal("no copy of TopicA/B")
			}
			cl.write(publish("TopicA/C", 2, ours))
			var pubrec bool
			for _, pk := range cl.untilPing() {
				pubrec = pubrec || pk.FixedHeader.Type == packets.Pubrec && pk.PacketID == ours
			}
			if !pubrec {
				t.Fatalf("no PUBREC %d for the client's QoS 2 message", ours)
			}
			cl.conn.Close()

			back := dialRawClient(t, b.Addr(), "clash", c.version)
			got := back.untilPing()
			if want := []string{"TopicA/B@1", "TopicA/C@2"}; !slices.Equal(topics(got), want) {
				t.Fatalf("resent at the next connection: %v, want %v", topics(got), want)
			}
			back.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: ours})
			if pk := back.next(); pk.FixedHeader.Type != packets.Pubcomp || pk.PacketID != ours || pk.ReasonCode != 0 {
				t.Fatalf("want PUBCOMP %d, got %v", ours, pk)
			}
		})
	}
}

// TestClientQoS2ExchangeSurvivesRestart: a client's QoS 2 exchange between PUBREC and PUBREL
// comes back with its session after a restart (-data) under the client's id, even when the
// broker keeps it under another one.
func TestClientQoS2ExchangeSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b, _ := startBroker(t, Config{DataDir: dir})
	cl := dialRawClient(t, b.Addr(), "restart", 4)
	cl.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "r/#", Qos: 1}}})
	if pk := cl.next(); pk.FixedHeader.Type != packets.Suback {
		t.Fatalf("want SUBACK, got %v", pk)
	}
	cl.write(publish("r/one", 2, 7)) // the broker keeps it under an id of its own
	var pubrec bool
	for _, pk := range cl.untilPing() {
		pubrec = pubrec || pk.FixedHeader.Type == packets.Pubrec && pk.PacketID == 7
	}
	if !pubrec {
		t.Fatal("no PUBREC 7")
	}
	cl.conn.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b2, _ := startBroker(t, Config{DataDir: dir})
	back := dialRawClient(t, b2.Addr(), "restart", 4)
	for _, pk := range back.untilPing() {
		if pk.FixedHeader.Type == packets.Pubrec && pk.PacketID != 7 {
			t.Errorf("resent PUBREC %d, want the client's id 7", pk.PacketID)
		}
	}
	back.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 7})
	if pk := back.next(); pk.FixedHeader.Type != packets.Pubcomp || pk.PacketID != 7 {
		t.Fatalf("want PUBCOMP 7, got %v", pk)
	}
	cl2, _ := b2.server.Clients.Get("restart")
	for _, pk := range cl2.State.Inflight.GetAll(false) {
		if pk.FixedHeader.Type == packets.Pubrec {
			t.Errorf("the client's QoS 2 exchange still in flight after PUBCOMP: %v", pk)
		}
	}
}

// TestCleanSessionLeavesNoPairs: mochi discards a clean MQTT 3.1.1 session when the client comes
// back, even without a clean start; a QoS 2 exchange left open there must not pair the client's
// id with a broker id that the new session gives to a message to the client: the client's next
// QoS 2 PUBLISH with that id took that message's place, and it was never resent.
func TestCleanSessionLeavesNoPairs(t *testing.T) {
	b, _ := startBroker(t, Config{})
	old := dialRawClientClean(t, b.Addr(), "stale", true)
	old.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "t", Qos: 1}}})
	if pk := old.next(); pk.FixedHeader.Type != packets.Suback {
		t.Fatalf("want SUBACK, got %v", pk)
	}
	old.write(publish("other", 2, 7)) // PUBREC 7, no PUBREL: kept under the broker's id 2
	if pk := old.next(); pk.FixedHeader.Type != packets.Pubrec {
		t.Fatalf("want PUBREC, got %v", pk)
	}
	cl := dialRawClient(t, b.Addr(), "stale", 4) // persistent: mochi drops the clean session; ids from 1 again
	cl.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "t", Qos: 1}}})
	if pk := cl.next(); pk.FixedHeader.Type != packets.Suback {
		t.Fatalf("want SUBACK, got %v", pk)
	}
	if err := injectPublish(b, "t", "ours"); err != nil {
		t.Fatal(err)
	}
	if pk := cl.next(); pk.FixedHeader.Type != packets.Publish { // not acknowledged
		t.Fatalf("want the message, got %v", pk)
	}
	cl.write(publish("other", 2, 7))
	cl.untilPing()
	cl.conn.Close()

	back := dialRawClient(t, b.Addr(), "stale", 4)
	var resent bool
	for _, pk := range back.untilPing() {
		resent = resent || pk.FixedHeader.Type == packets.Publish && string(pk.Payload) == "ours"
	}
	if !resent {
		t.Error("the message in flight to the client was not resent")
	}
}

// dialRawClientClean connects an MQTT 3.1.1 client with the clean session flag clean.
func dialRawClientClean(t *testing.T, addr, id string, clean bool) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, version: 4}
	c.write(rawmqtt.Connect{ID: id, Clean: clean, KeepAlive: 60}.Packet())
	if pk := c.next(); pk.FixedHeader.Type != packets.Connack {
		t.Fatalf("CONNACK: got %v", pk)
	}
	return c
}
