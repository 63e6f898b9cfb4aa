package broker

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
)

// dialFlow opens a raw MQTT 5 connection with a Receive Maximum and a Maximum Packet Size (0:
// not sent) and a session that lasts an hour; it subscribes to filter at QoS qos unless filter
// is empty.
func dialFlow(t testing.TB, addr, id string, clean bool, receiveMax uint16, maxPacket uint32, filter string, qos byte) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := rawmqtt.Connect{ID: id, Version: 5, Clean: clean, KeepAlive: 60}
	c.Properties.SessionExpiryInterval, c.Properties.SessionExpiryIntervalFlag = 3600, true
	c.Properties.ReceiveMaximum, c.Properties.MaximumPacketSize = receiveMax, maxPacket
	rawExchange(t, conn, c.Encode(), 0x20, -1)
	if filter != "" {
		rawExchange(t, conn, rawmqtt.Encode(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, ProtocolVersion: 5, PacketID: 1,
			Filters: packets.Subscriptions{{Filter: filter, Qos: qos}},
		}), 0x90, 1)
	}
	return conn
}

// publishQoS publishes payload on topic at qos (1 or 2, waiting for the PUBACK, or the PUBREC
// then PUBCOMP) or 0.
func publishQoS(t testing.TB, conn net.Conn, id uint16, topic string, qos byte, payload []byte) {
	t.Helper()
	raw := rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		ProtocolVersion: 5, PacketID: id, TopicName: topic, Payload: payload})
	switch qos {
	case 0:
		if _, err := conn.Write(raw); err != nil {
			t.Fatal(err)
		}
	case 1:
		rawExchange(t, conn, raw, 0x40, int(id))
	case 2:
		rawExchange(t, conn, raw, 0x50, int(id))
		rawExchange(t, conn, rawmqtt.Ack(packets.Pubrel, id), 0x70, int(id))
	}
}

// ack acknowledges pk as a subscriber does (QoS 2: PUBREC; readAcking completes the PUBREL).
func ack(t testing.TB, conn net.Conn, pk packets.Packet) {
	t.Helper()
	typ := byte(packets.Puback)
	if pk.FixedHeader.Qos == 2 {
		typ = packets.Pubrec
	}
	if _, err := conn.Write(rawmqtt.Ack(typ, pk.PacketID)); err != nil {
		t.Fatal(err)
	}
}

// readUntilSentinel reads, acknowledging nothing, the messages up to a QoS 0 one, and returns
// them without it.
func readUntilSentinel(t testing.TB, conn net.Conn) []packets.Packet {
	t.Helper()
	var got []packets.Packet
	for range 1000 {
		pk := readAcking(t, conn)
		if pk.FixedHeader.Qos == 0 {
			return got
		}
		got = append(got, pk)
	}
	t.Fatal("no QoS 0 sentinel in 1000 messages")
	return nil
}

// drain reads until n messages are in got, acknowledging the oldest only when receiveMax are
// unacknowledged: a message past the Receive Maximum is seen before an acknowledgement frees
// a slot. It acknowledges all at the end and returns the payloads in order of arrival.
func drain(t testing.TB, conn net.Conn, got []packets.Packet, receiveMax, n int) []string {
	t.Helper()
	unacked := got
	for len(got) < n {
		if len(unacked) > receiveMax {
			t.Fatalf("%d messages in flight, Receive Maximum %d", len(unacked), receiveMax)
		}
		if len(unacked) == receiveMax {
			ack(t, conn, unacked[0])
			unacked = unacked[1:]
		}
		pk := readAcking(t, conn)
		got, unacked = append(got, pk), append(unacked, pk)
	}
	for _, pk := range unacked {
		ack(t, conn, pk)
	}
	payloads := make([]string, len(got))
	for i, pk := range got {
		payloads[i] = string(pk.Payload)
	}
	return payloads
}

// readAcking reads the next PUBLISH; a PUBREL on the way is completed.
func readAcking(t testing.TB, conn net.Conn) packets.Packet {
	t.Helper()
	for range 100 {
		_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
		raw, err := rawmqtt.Read(conn)
		if err != nil {
			t.Fatalf("waiting for a PUBLISH: %v", err)
		}
		pk, err := rawmqtt.Decode(raw, 5)
		if err != nil {
			t.Fatalf("decode % x: %v", raw, err)
		}
		switch pk.FixedHeader.Type {
		case packets.Publish:
			return pk
		case packets.Pubrel:
			if _, err := conn.Write(rawmqtt.Ack(packets.Pubcomp, pk.PacketID)); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Fatal("no PUBLISH in 100 packets")
	return packets.Packet{}
}

func numbered(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}

// TestReceiveMaximumDeliversAllInOrder: with Receive Maximum 5, 100 messages arrive all, in
// order, never more than 5 unacknowledged (mochi: 10, shuffled, then nothing).
func TestReceiveMaximumDeliversAllInOrder(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprint("qos", qos), func(t *testing.T) {
			b, _ := startBroker(t, Config{})
			sub := dialFlow(t, b.Addr(), "sub", true, 5, 0, "rm/#", qos)
			pub := dialFlow(t, b.Addr(), "pub", true, 0, 0, "", 0)
			for i := range 100 {
				publishQoS(t, pub, uint16(i+1), "rm/x", qos, []byte(strconv.Itoa(i)))
			}
			// The first five are sent, the rest wait: a QoS 0 message (not counted) overtakes them.
			publishQoS(t, pub, 0, "rm/sentinel", 0, nil)
			first := readUntilSentinel(t, sub)
			if len(first) != 5 {
				t.Fatalf("before any acknowledgement got %d messages, want 5", len(first))
			}
			if got := drain(t, sub, first, 5, 100); fmt.Sprint(got) != fmt.Sprint(numbered(100)) {
				t.Fatalf("got %v", got)
			}
		})
	}
}
