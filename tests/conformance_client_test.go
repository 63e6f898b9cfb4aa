package tests

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
	"mqttdemo/tests/harness"
)

// confMsg is one PUBLISH a conformance client received: what the suite compares.
type confMsg struct {
	Topic   string // without the scenario's prefix
	Payload string
	QoS     byte
	Retain  bool
	Dup     bool
	Expiry  uint32 // MQTT 5 Message Expiry Interval; 0 when absent
	// HasExpiry is what the suite compares of Expiry: the seconds left depend on when each
	// broker looked at its clock.
	HasExpiry bool
	id        uint16 // the broker's packet id: not compared (each broker chooses its own)
}

func (m confMsg) String() string {
	s := fmt.Sprintf("%s=%s q%d", m.Topic, m.Payload, m.QoS)
	if m.Retain {
		s += " retain"
	}
	if m.Dup {
		s += " dup"
	}
	if m.Expiry != 0 {
		s += fmt.Sprintf(" expiry=%d", m.Expiry)
	}
	if m.HasExpiry {
		s += " expiry"
	}
	return s
}

// pendingAck is an acknowledgement withheld: the packet, and the payload of the PUBLISH it
// acknowledges (empty for a PUBCOMP).
type pendingAck struct {
	pk      []byte
	payload string
}

// confConn is one client of a conformance scenario: a raw MQTT connection (3.1.1 or 5) whose
// packets a goroutine reads and records. It answers the broker's messages itself unless told
// to withhold the acknowledgements; what it withholds waits in pending until ackPending.
type confConn struct {
	name    string
	prefix  string // topic prefix of the scenario, stripped from what is received
	version byte
	conn    net.Conn
	wmu     sync.Mutex // one writer at a time: the reader goroutine acknowledges too

	mu            sync.Mutex
	changed       chan struct{} // closed and replaced at every change
	withhold      bool
	expected      bool         // the test closed the connection (or will): its end is no event
	closed        bool         // the reader goroutine ended
	recvIDs       []uint16     // the broker's packet ids of the QoS 1/2 messages received on this connection
	pending       []pendingAck // withheld acknowledgements, in the order they are due
	answers       []packets.Packet
	msgs          []confMsg       // every message received, over all connections
	events        []string        // CONNACK, SUBACK, acks' reason codes, unexpected ends: compared too
	sentinel      map[string]bool // sentinel payloads seen
	sentinelTopic string
	acked         map[string]bool // payloads whose PUBLISH the client acknowledged (PUBACK or PUBREC sent)
}

func newConfConn(name, prefix, sentinelTopic string) *confConn {
	return &confConn{name: name, prefix: prefix, sentinelTopic: sentinelTopic,
		changed: make(chan struct{}), sentinel: make(map[string]bool), acked: make(map[string]bool)}
}

// note records a change and wakes the waiters; c.mu is held.
func (c *confConn) note() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitUntil waits until cond (called with c.mu held) is true, at most d.
func (c *confConn) waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok, ch := cond(), c.changed
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

func (c *confConn) event(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, fmt.Sprintf(format, args...))
	c.note()
}

// dial opens a new connection and sends pk (a CONNECT); it returns the CONNACK, or an error
// when the connection failed or the CONNACK did not come. withhold: acknowledge nothing from the
// start (a resumed session's messages come right after the CONNACK).
func (c *confConn) dial(addr string, pk packets.Packet, withhold bool) (packets.Packet, error) {
	nc, err := net.DialTimeout("tcp", addr, harness.Timeout)
	if err != nil {
		return packets.Packet{}, err
	}
	c.mu.Lock()
	c.conn, c.version = nc, pk.ProtocolVersion
	c.closed, c.expected, c.withhold = false, false, withhold
	c.recvIDs, c.pending, c.answers = nil, nil, nil
	c.mu.Unlock()
	go c.read(nc)
	if err := c.send(rawmqtt.Encode(pk)); err != nil {
		return packets.Packet{}, err
	}
	return c.answer(packets.Connack, 0)
}

// send writes one packet.
func (c *confConn) send(pk []byte) error {
	if pk == nil {
		return errors.New("packet not encodable")
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	nc := c.conn
	c.mu.Unlock()
	if nc == nil {
		return errors.New("not connected")
	}
	_ = nc.SetWriteDeadline(time.Now().Add(harness.Timeout))
	_, err := nc.Write(pk)
	return err
}

// encode encodes a packet of this connection's version.
func (c *confConn) encode(pk packets.Packet) []byte {
	pk.ProtocolVersion = c.version
	return rawmqtt.Encode(pk)
}

func (c *confConn) ack(typ byte, id uint16) []byte {
	return c.encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}, PacketID: id})
}

// read records every packet of nc until it ends.
func (c *confConn) read(nc net.Conn) {
	for {
		raw, err := rawmqtt.Read(nc)
		if err != nil {
			break
		}
		pk, err := rawmqtt.Decode(raw, c.version)
		if err != nil {
			c.event("undecodable packet % x: %v", raw[:min(len(raw), 16)], err)
			continue
		}
		c.receive(pk)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nc {
		if !c.expected {
			c.events = append(c.events, "connection closed by the broker")
		}
		c.closed = true
	}
	c.note()
}

// receive records one packet from the broker and acknowledges it unless withholding.
func (c *confConn) receive(pk packets.Packet) {
	var reply []byte
	var acks string // payload acknowledged by reply
	c.mu.Lock()
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.TopicName == c.sentinelTopic {
			c.sentinel[string(pk.Payload)] = true
			break
		}
		c.msgs = append(c.msgs, confMsg{Topic: strings.TrimPrefix(pk.TopicName, c.prefix), Payload: string(pk.Payload),
			QoS: pk.FixedHeader.Qos, Retain: pk.FixedHeader.Retain, Dup: pk.FixedHeader.Dup,
			Expiry: pk.Properties.MessageExpiryInterval, id: pk.PacketID})
		switch pk.FixedHeader.Qos {
		case 1:
			reply = c.ack(packets.Puback, pk.PacketID)
		case 2:
			reply = c.ack(packets.Pubrec, pk.PacketID)
		}
		if pk.FixedHeader.Qos > 0 {
			c.recvIDs = append(c.recvIDs, pk.PacketID)
			acks = string(pk.Payload)
		}
	case packets.Pubrel:
		reply = c.ack(packets.Pubcomp, pk.PacketID)
	case packets.Disconnect:
		c.events = append(c.events, fmt.Sprintf("DISCONNECT from the broker %#02x", pk.ReasonCode))
	default:
		c.answers = append(c.answers, pk)
	}
	if reply != nil && c.withhold {
		c.pending = append(c.pending, pendingAck{reply, acks})
		reply = nil
	}
	c.note()
	c.mu.Unlock()
	if reply != nil {
		c.sendAck(pendingAck{reply, acks}) // a failed write ends the connection, which the reader sees
	}
}

// answer waits for the broker's packet of type typ (and packet id, for acks) and takes it.
func (c *confConn) answer(typ byte, id uint16) (packets.Packet, error) {
	var got packets.Packet
	found := func() bool {
		for i, pk := range c.answers {
			if pk.FixedHeader.Type == typ && (id == 0 || pk.PacketID == id) {
				got = pk
				c.answers = append(c.answers[:i:i], c.answers[i+1:]...)
				return true
			}
		}
		return false
	}
	var closed bool
	ok := c.waitUntil(harness.Timeout, func() bool {
		closed = c.closed
		return found() || c.closed
	})
	switch {
	case got.FixedHeader.Type == typ:
		return got, nil
	case closed:
		return got, fmt.Errorf("connection closed before %s %d", packets.PacketNames[typ], id)
	case !ok:
		return got, fmt.Errorf("no %s %d within %s", packets.PacketNames[typ], id, harness.Timeout)
	}
	return got, nil
}

// ackPending sends the withheld acknowledgements and stops withholding.
func (c *confConn) ackPending() error {
	c.mu.Lock()
	due := c.pending
	c.pending, c.withhold = nil, false
	c.mu.Unlock()
	for _, a := range due {
		if err := c.sendAck(a); err != nil {
			return err
		}
	}
	return nil
}

// sendAck sends an acknowledgement and notes the payload it acknowledges.
func (c *confConn) sendAck(a pendingAck) error {
	if err := c.send(a.pk); err != nil {
		return err
	}
	if a.payload != "" {
		c.mu.Lock()
		c.acked[a.payload] = true
		c.mu.Unlock()
	}
	return nil
}

// hang up closes the connection without DISCONNECT, or after sending one.
func (c *confConn) hangUp(disconnect []byte) {
	c.mu.Lock()
	nc := c.conn
	c.expected = true
	c.mu.Unlock()
	if nc == nil {
		return
	}
	if disconnect != nil {
		_ = c.send(disconnect)
		// the broker closes the connection after DISCONNECT: by then it has decided about the will
		c.waitUntil(harness.Timeout, func() bool { return c.closed })
	}
	nc.Close()
	c.waitUntil(harness.Timeout, func() bool { return c.closed })
}

// connected reports whether the connection is open.
func (c *confConn) connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil && !c.closed
}

// received returns a copy of the messages received so far.
func (c *confConn) received() []confMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]confMsg(nil), c.msgs...)
}
