package mqttclient

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"mqttdemo/shared/console"
)

// Packet is one MQTT control packet as -debug shows it: what the protocol says, never the
// password and never the payload (only its size).
type Packet struct {
	At        time.Time `json:"at"`
	Direction string    `json:"direction"` // "out": client to broker; "in": broker to client
	Type      string    `json:"packet"`    // PUBLISH, PUBREC, …
	ID        uint16    `json:"id,omitempty"`

	// PUBLISH
	QoS          *byte  `json:"qos,omitempty"`
	Dup          bool   `json:"dup,omitempty"`
	Retain       bool   `json:"retain,omitempty"`
	Topic        string `json:"topic,omitempty"`
	PayloadBytes *int   `json:"payload_bytes,omitempty"`

	// SUBSCRIBE, UNSUBSCRIBE (QoS only in SUBSCRIBE), SUBACK
	Filters []Filter `json:"filters,omitempty"`
	Granted []int    `json:"granted,omitempty"` // 128: refused

	// CONNECT
	ClientID     string `json:"client_id,omitempty"`
	CleanSession *bool  `json:"clean_session,omitempty"`
	KeepAlive    *int   `json:"keepalive_s,omitempty"`
	Username     string `json:"username,omitempty"`
	HasPassword  bool   `json:"password_set,omitempty"`
	WillTopic    string `json:"will_topic,omitempty"`

	// CONNACK
	ReturnCode     *byte `json:"return_code,omitempty"`
	SessionPresent bool  `json:"session_present,omitempty"`

	// Error is set, and the rest empty, when the bytes are not an MQTT 3.1.1 packet.
	Error string `json:"error,omitempty"`
}

// Filter is one topic filter of a SUBSCRIBE or UNSUBSCRIBE.
type Filter struct {
	Topic string `json:"topic"`
	QoS   *byte  `json:"qos,omitempty"`
}

// Directions of a Packet.
const (
	Out = "out"
	In  = "in"
)

// Trace has report called with every MQTT packet the client writes to or reads from the broker,
// decoded from the bytes on the wire with paho's packet types, on every connection opts opens.
// The bytes are tapped under anything KeepReleases adds (call Trace first), so what is reported
// is what was sent. report runs on paho's network goroutines, before the packet is written or
// handed to paho: it must be quick, and it sees the packets in the order of the wire.
func Trace(opts *mqtt.ClientOptions, report func(Packet)) {
	wrapConn(opts, func(conn net.Conn) net.Conn {
		return &traceConn{Conn: conn, in: decoder{dir: In, report: report}, out: decoder{dir: Out, report: report}}
	})
}

// traceConn reports the packets read and written through it.
type traceConn struct {
	net.Conn
	rmu sync.Mutex // Read is called by one goroutine; the lock is for the race detector's peace
	in  decoder
	wmu sync.Mutex // keeps the reports in the order of the writes
	out decoder
}

func (c *traceConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.rmu.Lock()
	c.in.feed(p[:n])
	c.rmu.Unlock()
	return n, err
}

// Write reports before writing, as mosquitto_pub -d does ("sending"): reported after, the
// packet could come after the broker's answer to it, read in the meantime.
func (c *traceConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.out.feed(p)
	return c.Conn.Write(p)
}

// decoder cuts one direction of a connection into packets, whatever the chunks it is fed.
type decoder struct {
	dir    string
	report func(Packet)
	buf    []byte
	broken bool // the stream stopped making sense: nothing more is reported
}

func (d *decoder) feed(p []byte) {
	if d.broken {
		return
	}
	d.buf = append(d.buf, p...)
	for len(d.buf) > 0 {
		size, ok, err := packetSize(d.buf)
		if err != nil {
			d.broken, d.buf = true, nil
			d.report(Packet{At: time.Now(), Direction: d.dir, Error: err.Error()})
			return
		}
		if !ok || len(d.buf) < size {
			return
		}
		pk := Decode(d.buf[:size])
		pk.At, pk.Direction = time.Now(), d.dir
		d.report(pk)
		d.buf = append(d.buf[:0], d.buf[size:]...)
	}
}

// packetSize returns the whole size of the packet at the start of b, once its fixed header
// is complete (ok).
func packetSize(b []byte) (size int, ok bool, err error) {
	remain, mult := 0, 1
	for i := 1; i < len(b); i++ {
		if i > 4 {
			return 0, false, fmt.Errorf("remaining length longer than 4 bytes")
		}
		remain += int(b[i]&0x7f) * mult
		mult *= 128
		if b[i]&0x80 == 0 {
			return i + 1 + remain, true, nil
		}
	}
	return 0, false, nil
}

// Decode describes the one whole packet in b, with paho's own packet reader.
func Decode(b []byte) Packet {
	cp, err := packets.ReadPacket(bytes.NewReader(b))
	if err != nil {
		name := "packet"
		if len(b) > 0 && packets.PacketNames[b[0]>>4] != "" {
			name = packets.PacketNames[b[0]>>4]
		}
		return Packet{Error: fmt.Sprintf("malformed %s: %v", name, err)}
	}
	pk := Packet{Type: packets.PacketNames[b[0]>>4]}
	switch c := cp.(type) {
	case *packets.ConnectPacket:
		keep, clean := int(c.Keepalive), c.CleanSession
		pk.ClientID, pk.CleanSession, pk.KeepAlive = c.ClientIdentifier, &clean, &keep
		pk.Username, pk.HasPassword = c.Username, c.PasswordFlag
		if c.WillFlag {
			pk.WillTopic = c.WillTopic
		}
	case *packets.ConnackPacket:
		rc := c.ReturnCode
		pk.ReturnCode, pk.SessionPresent = &rc, c.SessionPresent
	case *packets.PublishPacket:
		qos, size := c.Qos, len(c.Payload)
		pk.QoS, pk.Dup, pk.Retain, pk.Topic, pk.PayloadBytes = &qos, c.Dup, c.Retain, c.TopicName, &size
		if c.Qos > 0 {
			pk.ID = c.MessageID
		}
	case *packets.PubackPacket:
		pk.ID = c.MessageID
	case *packets.PubrecPacket:
		pk.ID = c.MessageID
	case *packets.PubrelPacket:
		pk.ID = c.MessageID
	case *packets.PubcompPacket:
		pk.ID = c.MessageID
	case *packets.SubscribePacket:
		pk.ID = c.MessageID
		for i, t := range c.Topics {
			q := c.Qoss[i]
			pk.Filters = append(pk.Filters, Filter{Topic: t, QoS: &q})
		}
	case *packets.SubackPacket:
		pk.ID = c.MessageID
		for _, g := range c.ReturnCodes {
			pk.Granted = append(pk.Granted, int(g))
		}
	case *packets.UnsubscribePacket:
		pk.ID = c.MessageID
		for _, t := range c.Topics {
			pk.Filters = append(pk.Filters, Filter{Topic: t})
		}
	case *packets.UnsubackPacket:
		pk.ID = c.MessageID
	}
	return pk
}

// Text is the packet's details in words, after its type: "id 1, qos 2, dup 0, retain 0, topic
// mytopic, 27 bytes".
func (pk Packet) Text() string {
	if pk.Error != "" {
		return pk.Error
	}
	var f []string
	add := func(format string, args ...any) { f = append(f, fmt.Sprintf(format, args...)) }
	switch pk.Type {
	case "CONNECT":
		add("client %s", pk.ClientID)
		if pk.CleanSession != nil && *pk.CleanSession {
			add("clean session")
		} else {
			add("persistent session")
		}
		if pk.KeepAlive != nil {
			add("keep-alive %ds", *pk.KeepAlive)
		}
		if pk.Username != "" {
			add("user %s", pk.Username)
		}
		if pk.HasPassword {
			add("password (not shown)")
		}
		if pk.WillTopic != "" {
			add("will to %s", pk.WillTopic)
		}
	case "CONNACK":
		if pk.ReturnCode != nil {
			if *pk.ReturnCode == 0 {
				add("accepted (0)")
			} else {
				add("refused (%d): %s", *pk.ReturnCode, strings.TrimPrefix(packets.ConnackReturnCodes[*pk.ReturnCode], "Connection Refused: "))
			}
		}
		if pk.SessionPresent {
			add("session present")
		}
	case "PUBLISH":
		if pk.ID != 0 {
			add("id %d", pk.ID)
		}
		add("qos %d, dup %d, retain %d", deref(pk.QoS), b2i(pk.Dup), b2i(pk.Retain))
		add("topic %s", console.Printable(pk.Topic))
		add("%d bytes", deref(pk.PayloadBytes))
	case "SUBSCRIBE", "UNSUBSCRIBE":
		add("id %d", pk.ID)
		for _, t := range pk.Filters {
			if t.QoS != nil {
				add("%s (qos %d)", t.Topic, *t.QoS)
			} else {
				add("%s", t.Topic)
			}
		}
	case "SUBACK":
		add("id %d", pk.ID)
		granted := make([]string, len(pk.Granted))
		for i, g := range pk.Granted {
			granted[i] = strconv.Itoa(g)
			if g == 0x80 {
				granted[i] = "refused"
			}
		}
		add("granted %s", strings.Join(granted, " "))
	default:
		if pk.ID != 0 {
			add("id %d", pk.ID)
		}
	}
	return strings.Join(f, ", ")
}

func deref[T byte | int](p *T) T {
	if p == nil {
		return 0
	}
	return *p
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Tags of the -debug lines.
const (
	TagOut = "PACKET OUT"
	TagIn  = "PACKET IN"
)

// traceLine writes one console line for the packet:
// "PACKET OUT   PUBLISH     id 1, qos 2, dup 0, retain 0, topic mytopic, 27 bytes".
func traceLine(con *console.Console, pk Packet) {
	tag, style := TagIn, console.StyleDim
	if pk.Direction == Out {
		tag = TagOut
	}
	if pk.Error != "" {
		style = console.StyleWarn
	}
	text := pk.Text()
	if pk.Error == "" {
		text = strings.TrimSpace(fmt.Sprintf("%-11s %s", pk.Type, text))
	}
	con.Line(style, tag, text)
}
