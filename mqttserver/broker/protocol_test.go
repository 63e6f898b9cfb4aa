package broker

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/limits"
	"mqttdemo/mqttserver/rawmqtt"
)

// TestConnackTellsLimits: an MQTT 5 client is told the packet size limit and the topic alias
// maximum it is held to (issue 27 item 4, issue 21 item 6).
func TestConnackTellsLimits(t *testing.T) {
	lim := limits.DefaultLimits()
	lim.MaxPacketSize = 1024
	b, _ := startBroker(t, Config{Limits: lim})
	conn := dialV(t, b.Addr(), 5)
	ack := readConnack(t, conn)
	p := ack.Properties
	if p.MaximumPacketSize != 1024 || p.TopicAliasMaximum != limits.DefaultMaxTopicAliases || p.ReceiveMaximum == 0 {
		t.Errorf("CONNACK says maximum packet size %d, topic alias maximum %d, receive maximum %d; want 1024, %d and some",
			p.MaximumPacketSize, p.TopicAliasMaximum, p.ReceiveMaximum, limits.DefaultMaxTopicAliases)
	}
}

// TestProtocolErrorsDisconnect: each protocol error ends the connection, an MQTT 5 client told
// the reason code first, as Mosquitto 2.0.11 does (issue 27 items 4 and 6, issue 21 item 10).
func TestProtocolErrorsDisconnect(t *testing.T) {
	const limit = 1024
	lim := limits.DefaultLimits()
	lim.MaxPacketSize = limit
	b, _ := startBroker(t, Config{Limits: lim})
	id := []byte{0, 1}
	noProps := []byte{0}
	alias := func(a byte) []byte { return []byte{3, packets.PropTopicAlias, 0, a} }
	for _, c := range []struct {
		name    string
		version byte
		pk      []byte
		want    byte // DISCONNECT reason code; 0: closed without one
	}{
		{"wildcard not a whole level", 5, rawmqtt.Frame(0x82, id, noProps, rawmqtt.String("x/y+"), []byte{0}), 0x81},
		{"wildcard not a whole level 3.1.1", 4, rawmqtt.Frame(0x82, id, rawmqtt.String("x/y+"), []byte{0}), 0},
		{"# not last", 5, rawmqtt.Frame(0x82, id, noProps, rawmqtt.String("x/#/y"), []byte{0}), 0x81},
		{"shared with No Local", 5, rawmqtt.Frame(0x82, id, noProps, rawmqtt.String("$share/g/t"), []byte{0x04}), 0x82},
		{"subscription identifier 0", 5, rawmqtt.Frame(0x82, id, []byte{2, packets.PropSubscriptionIdentifier, 0}, rawmqtt.String("t"), []byte{0}), 0x82},
		{"topic alias 0", 5, rawmqtt.Frame(0x30, rawmqtt.String("t"), alias(0), []byte("m")), 0x94},
		{"topic alias over the maximum", 5, rawmqtt.Frame(0x30, rawmqtt.String("t"), alias(limits.DefaultMaxTopicAliases+1), []byte("m")), 0x94},
		{"unknown topic alias, empty topic", 5, rawmqtt.Frame(0x30, rawmqtt.String(""), alias(1), []byte("m")), 0x82},
		{"packet one byte over", 5, rawmqtt.Frame(0x30, rawmqtt.String("t"), noProps, make([]byte, limit-3-3-1+1)), 0x95},
		{"packet far over", 5, rawmqtt.Frame(0x30, rawmqtt.String("t"), noProps, make([]byte, 2*limit)), 0x95},
		{"packet far over 3.1.1", 4, rawmqtt.Frame(0x30, rawmqtt.String("t"), make([]byte, 2*limit)), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := dialV(t, b.Addr(), c.version)
			readConnack(t, conn)
			if _, err := conn.Write(c.pk); err != nil {
				t.Fatal(err)
			}
			code, closed := disconnectCode(t, conn)
			if code != c.want || !closed {
				t.Errorf("got DISCONNECT %#x (0: none), closed %v; want %#x and closed", code, closed, c.want)
			}
		})
	}
}

// TestKnownTopicAliasStillWorks: an empty topic with an alias set before is the alias's topic,
// also with -auth: mochi checked the empty topic against the user's rules before it looked the
// alias up, refused the message (0x87 at QoS 1, nothing at QoS 0), and topic aliases could not be
// used (as they can on Mosquitto).
func TestKnownTopicAliasStillWorks(t *testing.T) {
	for _, auth := range []bool{false, true} {
		t.Run(fmt.Sprintf("auth %v", auth), func(t *testing.T) {
			cfg, connect := Config{}, rawmqtt.Connect{ID: "aliases", Version: 5, Clean: true, KeepAlive: 60}
			if auth {
				cfg.AuthFile = writeAuthFile(t)
				connect.User, connect.Password = "alice", alicePassword
			}
			b, _ := startBroker(t, cfg)
			conn, err := net.DialTimeout("tcp", b.Addr(), waitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			_ = conn.SetDeadline(time.Now().Add(waitTimeout))
			write := func(pk []byte) {
				t.Helper()
				if _, err := conn.Write(pk); err != nil {
					t.Fatal(err)
				}
			}
			write(connect.Encode())
			if ack := readConnack(t, conn); ack.ReasonCode != 0 {
				t.Fatalf("CONNACK %#x", ack.ReasonCode)
			}
			write(rawmqtt.Frame(0x82, []byte{0, 1}, []byte{0}, rawmqtt.String("sensors/t"), []byte{1}))
			alias := []byte{3, packets.PropTopicAlias, 0, 1}
			write(rawmqtt.Frame(0x30, rawmqtt.String("sensors/t"), alias, []byte("one")))
			write(rawmqtt.Frame(0x30, rawmqtt.String(""), alias, []byte("two")))
			write(rawmqtt.Frame(0x32, rawmqtt.String(""), []byte{0, 9}, alias, []byte("three")))
			var got []string
			acked := false
			for len(got) < 3 || !acked {
				raw, err := rawmqtt.Read(conn)
				if err != nil {
					t.Fatalf("after %q: %v", got, err)
				}
				pk, err := rawmqtt.Decode(raw, 5)
				switch {
				case err != nil:
				case pk.FixedHeader.Type == packets.Publish:
					got = append(got, pk.TopicName+" "+string(pk.Payload))
				case pk.FixedHeader.Type == packets.Puback && pk.PacketID == 9:
					if pk.ReasonCode >= 0x80 {
						t.Fatalf("PUBACK %#x for the QoS 1 message by alias", pk.ReasonCode)
					}
					acked = true
				}
			}
			if got[0] != "sensors/t one" || got[1] != "sensors/t two" || got[2] != "sensors/t three" {
				t.Errorf("got %q, want all three on sensors/t", got)
			}
		})
	}
}

// dialV connects a raw client of MQTT version v (4 or 5) and leaves the CONNACK unread.
func dialV(t *testing.T, addr string, v byte) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := conn.Write(rawmqtt.Connect{ID: t.Name(), Version: v, Clean: true, KeepAlive: 60}.Encode()); err != nil {
		t.Fatal(err)
	}
	return conn
}

func readConnack(t *testing.T, conn net.Conn) packets.Packet {
	t.Helper()
	raw, err := rawmqtt.Read(conn)
	if err != nil {
		t.Fatal(err)
	}
	v := byte(4)
	if len(raw) > 4 { // an MQTT 5 CONNACK has properties
		v = 5
	}
	pk, err := rawmqtt.Decode(raw, v)
	if err != nil || pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0 {
		t.Fatalf("want CONNACK accepted, got % x (%v)", raw, err)
	}
	return pk
}

// disconnectCode reads until the broker closes the connection, and returns the reason code of
// the DISCONNECT it sent before, if any.
func disconnectCode(t *testing.T, conn net.Conn) (code byte, closed bool) {
	t.Helper()
	for range 100 {
		raw, err := rawmqtt.Read(conn)
		var netErr net.Error
		switch {
		case errors.As(err, &netErr) && netErr.Timeout():
			return code, false
		case err != nil: // EOF, or reset after the DISCONNECT
			return code, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET)
		case raw[0] == 0xe0 && len(raw) > 2:
			code = raw[2]
		}
	}
	return code, false
}
