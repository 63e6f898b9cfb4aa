package tests

import (
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
	"mqttdemo/tests/harness"
)

// aliasPublish is an MQTT 5 QoS 0 PUBLISH to topic that sets topic alias a.
func aliasPublish(topic string, a uint16) []byte {
	return rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 5,
		TopicName: topic, Payload: []byte("m"),
		Properties: packets.Properties{TopicAlias: a, TopicAliasFlag: true}})
}

// TestSecurityTopicAliasBytes: the real broker with its default limits (10 aliases, 64 KiB of
// alias topics a connection). Setting one alias again and again to a 7,000-byte topic holds one
// topic; nine aliases of 7,000 bytes fit, the tenth would hold 70,000 bytes and ends the
// connection with DISCONNECT 0x97 (quota exceeded), counted in /stats and summed up in the log.
// Before, ten aliases of 64 KiB topics were allowed, and more with -max-topic-aliases raised.
func TestSecurityTopicAliasBytes(t *testing.T) {
	server, url := harness.StartServer(t, nil, "-http-listen", "127.0.0.1:0")
	c, code := rawConnect(t, hostPort(url), connectOpts{version: 5, id: "aliases"})
	if code != 0 {
		t.Fatalf("CONNACK %#02x", code)
	}
	topic := func(a uint16, n int) string {
		return string(rune('a'+a)) + "/" + strings.Repeat("x", 7000-2) + string(rune('0'+n%10))
	}
	for n := range 30 { // one alias replaced: its old topic is no longer held
		c.send(t, aliasPublish(topic(1, n), 1))
	}
	for a := uint16(2); a <= 9; a++ {
		c.send(t, aliasPublish(topic(a, 0), a))
	}
	c.send(t, rawmqtt.Pingreq())
	if pk := c.read(t); pk[0] != 0xd0 {
		t.Fatalf("after nine aliases of 7,000 bytes: % x, want PINGRESP", pk[:min(len(pk), 8)])
	}
	c.send(t, aliasPublish(topic(10, 0), 10))
	c.send(t, rawmqtt.Pingreq())
	if pk := c.read(t); pk[0] != 0xe0 || len(pk) < 3 || pk[2] != 0x97 {
		t.Fatalf("after a tenth alias, 70,000 bytes: % x, want DISCONNECT 0x97 (quota exceeded)", pk[:min(len(pk), 8)])
	}
	if !closedByPeer(c) {
		t.Error("the connection stayed open after the DISCONNECT")
	}
	if got := statsCounter(t, server, "topic_alias_refused"); got != 1 {
		t.Errorf("/stats topic_alias_refused = %d, want 1", got)
	}
	server.WaitFor(t, `DISCONNECTED +count=1 reason="topic aliases over -max-topic-alias-bytes`)
}

// TestSecurityNoTopicAliasesSent: a client that takes up to 100 topic aliases (its CONNECT's
// Topic Alias Maximum) is sent every message with its full topic and no alias, by ours as by
// Mosquitto 2.0.11: an alias the broker chose would hold the topic for the life of the
// connection (mochi chose up to the client's maximum, 65,535).
func TestSecurityNoTopicAliasesSent(t *testing.T) {
	onBothBrokers(t, func(t *testing.T, c *rawConn) {
		connect := rawmqtt.Connect{ID: "takes-aliases", Version: 5, Clean: true, KeepAlive: 30}
		connect.Properties.TopicAliasMaximum = 100
		c.send(t, connect.Encode())
		if ack := c.read(t); ack[0] != 0x20 || ack[3] != 0 {
			t.Fatalf("CONNACK % x", ack)
		}
		c.send(t, rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
			ProtocolVersion: 5, PacketID: 1, Filters: packets.Subscriptions{{Filter: "o/#"}}}))
		if ack := c.read(t); ack[0] != 0x90 {
			t.Fatalf("SUBACK % x", ack)
		}
		for range 2 {
			c.send(t, rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish},
				ProtocolVersion: 5, TopicName: "o/x", Payload: []byte("m")}))
			pk, err := rawmqtt.Decode(c.read(t), 5)
			if err != nil || pk.FixedHeader.Type != packets.Publish {
				t.Fatalf("want the PUBLISH back, got %v (%v)", pk, err)
			}
			if pk.TopicName != "o/x" || pk.Properties.TopicAlias != 0 {
				t.Errorf("PUBLISH with topic %q and topic alias %d, want o/x and none", pk.TopicName, pk.Properties.TopicAlias)
			}
		}
	})
}
