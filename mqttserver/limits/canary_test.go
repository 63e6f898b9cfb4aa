package limits

// Canaries: each test shows one mochi v2.7.9 flaw that this package mends (mochifix/doc.go,
// "Limits") on bare mochi, and fails once mochi no longer shows it, so that the mend can go.

import (
	"bytes"
	"math"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/internal/bare"
	"mqttdemo/mqttserver/rawmqtt"
)

// TestCanaryPacketSizeWithoutFixedHeader: mochi compares the remaining length + 1 with
// MaximumPacketSize, so a packet up to four bytes over it passes.
func TestCanaryPacketSizeWithoutFixedHeader(t *testing.T) {
	const limit = 200
	opts := &mqtt.Options{Capabilities: mqtt.NewDefaultServerCapabilities()}
	opts.Capabilities.MaximumPacketSize = limit
	_, addr := bare.Serve(t, opts)
	conn := bare.Connect(t, addr, rawmqtt.Connect{ID: "big", Clean: true})
	pk := rawmqtt.Publish("t", 1, 1, make([]byte, limit-1-len("t")-4)) // remaining length limit-1
	if len(pk) <= limit {
		t.Fatalf("the packet is %d bytes, want more than %d", len(pk), limit)
	}
	bare.Write(t, conn, pk)
	if ack, err := rawmqtt.Read(conn); err != nil || ack[0] != 0x40 {
		t.Fatalf("mochi no longer shows packets over MaximumPacketSize accepted (%d bytes: % x, %v): "+
			"the mend in limits/limits.go (OnPacketRead) may go (see doc.go)", len(pk), ack, err)
	}
}

// TestCanarySubscribeOptionsUnchecked: mochi reads an MQTT 5 SUBSCRIBE's options byte without
// looking whether it is there (a panic that ends the broker: mochi-mqtt/server#501), and grants
// options with reserved bits set or Retain Handling 3.
func TestCanarySubscribeOptionsUnchecked(t *testing.T) {
	decode := func(body ...byte) (panicked bool, err error) {
		defer func() { panicked = recover() != nil }()
		pk := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}}
		return false, pk.SubscribeDecode(body)
	}
	if panicked, _ := decode(0, 1, 0, 0, 1, 'a'); !panicked { // packet id 1, no properties, filter "a"
		t.Error("mochi no longer panics on a filter without its options byte: the mend in limits/subscribewatch.go may go (see doc.go)")
	}
	for _, options := range []byte{0xc1, 0x31} {
		if panicked, err := decode(0, 1, 0, 0, 1, 'a', options); err != nil || panicked {
			t.Errorf("mochi no longer takes subscription options %#x (%v): the mend in limits/subscribewatch.go may go (see doc.go)", options, err)
		}
	}
}

// TestCanaryShortDisconnectReasonUnread: mochi reads no reason code from an MQTT 5 DISCONNECT
// of one byte, so 0x04 (disconnect with will message) is taken for 0x00 and the will is dropped.
func TestCanaryShortDisconnectReasonUnread(t *testing.T) {
	pk := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Disconnect, Remaining: 1}}
	if err := pk.DisconnectDecode([]byte{packets.CodeDisconnectWillMessage.Code}); err != nil || pk.ReasonCode != 0 {
		t.Fatalf("mochi now reads the reason code of a one-byte DISCONNECT (%#x, %v): the mend in "+
			"limits/packetwatch.go (disconnectReason) may go (see doc.go)", pk.ReasonCode, err)
	}
}

// TestCanaryLongLengthRead: mochi reads a variable byte integer of any number of bytes (a
// fifth and later ones of 0x80, or a last 0, add nothing), where MQTT allows four: a packet whose
// length the connection layer would not follow.
func TestCanaryLongLengthRead(t *testing.T) {
	n, used, err := packets.DecodeLength(bytes.NewBuffer([]byte{0x88, 0x80, 0x80, 0x80, 0x00}))
	if err != nil || n != 8 || used != 5 {
		t.Fatalf("mochi no longer reads a length of five bytes (%d in %d, %v): the check in "+
			"limits/packetwatch.go may go (see doc.go)", n, used, err)
	}
}

// TestCanarySysPublishUnanswered: mochi drops a QoS 1 PUBLISH to a $SYS topic without an
// acknowledgement: the next answer the client gets is the PINGRESP to what it sent after.
func TestCanarySysPublishUnanswered(t *testing.T) {
	_, addr := bare.Serve(t, nil)
	conn := bare.Connect(t, addr, rawmqtt.Connect{ID: "sys", Clean: true})
	bare.Write(t, conn, append(rawmqtt.Publish("$SYS/x", 1, 7, []byte("m")), rawmqtt.Pingreq()...))
	if answer := bare.Read(t, conn); answer[0] != 0xd0 {
		t.Fatalf("mochi now answers a PUBLISH to $SYS (% x): the mend in limits/protocol.go "+
			"(answerSysPublish) may go (see doc.go)", answer)
	}
}

// TestCanaryAliasCheckedEmpty: mochi checks a PUBLISH that names its topic by alias alone
// against the access rules with the empty topic, before it looks the alias up.
func TestCanaryAliasCheckedEmpty(t *testing.T) {
	acl := &aclTopics{}
	_, addr := bare.Serve(t, nil, acl)
	conn := bare.Connect(t, addr, rawmqtt.Connect{ID: "alias", Version: 5, Clean: true,
		Properties: packets.Properties{TopicAliasMaximum: 10}})
	alias := []byte{3, packets.PropTopicAlias, 0, 1}
	bare.Write(t, conn, rawmqtt.Frame(0x32, rawmqtt.String("a/t"), []byte{0, 1}, alias, []byte("one")))
	bare.Write(t, conn, rawmqtt.Frame(0x32, rawmqtt.String(""), []byte{0, 2}, alias, []byte("two")))
	for range 2 {
		bare.Read(t, conn) // the PUBACKs: both checks are done
	}
	if got := acl.list(); len(got) != 2 || got[1] != "" {
		t.Fatalf("mochi now checks %q: the mend in limits/protocol.go (withAliasTopic) may go (see doc.go)", got)
	}
}

// aclTopics records the topics mochi checks for publishing, and allows them all.
type aclTopics struct {
	mqtt.HookBase
	mu     sync.Mutex
	topics []string
}

func (*aclTopics) ID() string           { return "canary-acl-topics" }
func (*aclTopics) Provides(b byte) bool { return b == mqtt.OnACLCheck }
func (a *aclTopics) OnACLCheck(_ *mqtt.Client, topic string, write bool) bool {
	if write {
		a.mu.Lock()
		a.topics = append(a.topics, topic)
		a.mu.Unlock()
	}
	return true
}

func (a *aclTopics) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.topics...)
}

// TestCanaryWritesBlockUnderLock: mochi holds a client's lock while it writes to the socket,
// and a publisher takes that lock for a packet id: a subscriber that stops reading stalls its
// publishers. The subscriber is a pipe, whose writes block at once until read.
func TestCanaryWritesBlockUnderLock(t *testing.T) {
	server, addr := bare.Serve(t, nil)
	sub, end := net.Pipe()
	go func() { _ = server.EstablishConnection("pipe", end) }()
	t.Cleanup(func() { sub.Close() }) // before the server closes: unblocks the write
	_ = sub.SetDeadline(time.Now().Add(bare.Wait))
	bare.Write(t, sub, rawmqtt.Connect{ID: "stalled", Clean: true, KeepAlive: 60}.Encode())
	bare.Read(t, sub) // CONNACK
	bare.Exchange(t, sub, rawmqtt.Subscribe(1, "q/#", 1), 0x90)
	// From here the subscriber reads nothing.

	pub := bare.Connect(t, addr, rawmqtt.Connect{ID: "pub", Clean: true})
	bare.Write(t, pub, rawmqtt.Publish("q/x", 1, 1, []byte("one")))
	if !waitGoroutine("(*Client).WritePacket", "net.(*pipe).write") {
		t.Fatal("mochi never wrote the first message to the subscriber")
	}
	bare.Write(t, pub, rawmqtt.Publish("q/x", 1, 2, []byte("two")))
	if !waitGoroutine("(*Client).NextPacketID", "sync.(*Mutex).Lock") {
		t.Fatal("mochi no longer shows a publisher stalled by a subscriber that stopped reading: " +
			"the mend in limits/slowclients.go may go (see doc.go)")
	}
}

// waitGoroutine waits (bare.Wait at most) for a goroutine whose stack holds each of fns.
func waitGoroutine(fns ...string) bool {
	buf := make([]byte, 1<<22)
	for deadline := time.Now().Add(bare.Wait); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			all := true
			for _, fn := range fns {
				all = all && strings.Contains(g, fn)
			}
			if all {
				return true
			}
		}
	}
	return false
}

// TestCanaryReadBuffer2KiB: mochi gives every connection, idle or not, a 2 KiB read buffer.
func TestCanaryReadBuffer2KiB(t *testing.T) {
	if n := bare.New(t, nil).Options.ClientNetReadBufferSize; n != 2048 {
		t.Fatalf("mochi no longer shows a 2 KiB read buffer per connection (%d bytes): the mend in "+
			"limits/slowclients.go (IdleReadBuffer, set in broker/run.go) may go (see doc.go)", n)
	}
}

// TestCanaryMemoryBoundedByCounts: mochi copies the payload for each session it queues a message
// to, bounds a session by a count of messages whatever their size, and keeps an MQTT 3.1.1
// persistent session for ever.
func TestCanaryMemoryBoundedByCounts(t *testing.T) {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, Payload: bytes.Repeat([]byte("x"), 64)}
	cp := pk.Copy(false)
	caps := bare.New(t, nil).Options.Capabilities
	if &cp.Payload[0] == &pk.Payload[0] || caps.MaximumSessionExpiryInterval != math.MaxUint32 {
		t.Fatalf("mochi no longer shows memory bounded by counts only (payload shared: %v, session expiry %d s): "+
			"the mend in limits/queues.go may go (see doc.go)", &cp.Payload[0] == &pk.Payload[0], caps.MaximumSessionExpiryInterval)
	}
}

// TestCanaryAcksInheritUserProperties: mochi's PUBACK carries the PUBLISH's user properties.
func TestCanaryAcksInheritUserProperties(t *testing.T) {
	_, addr := bare.Serve(t, nil)
	conn := bare.Connect(t, addr, rawmqtt.Connect{ID: "v5", Version: 5, Clean: true})
	bare.Write(t, conn, rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		ProtocolVersion: 5, TopicName: "t", PacketID: 1, Payload: []byte("m"),
		Properties: packets.Properties{User: []packets.UserProperty{{Key: "k", Val: "v"}}}}))
	ack, err := rawmqtt.Decode(bare.Read(t, conn), 5)
	if err != nil {
		t.Fatal(err)
	}
	if ack.FixedHeader.Type != packets.Puback || len(ack.Properties.User) == 0 {
		t.Fatalf("mochi no longer shows acks that inherit user properties (type %d, user properties %v): the mend "+
			"in limits/limits.go (NoInheritedPropertiesOnAck) may go (see doc.go)", ack.FixedHeader.Type, ack.Properties.User)
	}
}

// TestCanaryConnackOmitsLimits: mochi tells an MQTT 5 client neither its Maximum Packet Size nor
// its Topic Alias Maximum in the CONNACK, and grants the filter x/y+ (a wildcard must fill a
// whole level, MQTT-4.7.1-2).
func TestCanaryConnackOmitsLimits(t *testing.T) {
	opts := &mqtt.Options{Capabilities: mqtt.NewDefaultServerCapabilities()}
	opts.Capabilities.MaximumPacketSize, opts.Capabilities.TopicAliasMaximum = 1024, 10
	_, addr := bare.Serve(t, opts)
	conn := bare.Dial(t, addr, rawmqtt.Connect{ID: "v5", Version: 5, Clean: true})
	ack, err := rawmqtt.Decode(bare.Read(t, conn), 5)
	if err != nil {
		t.Fatal(err)
	}
	bare.Write(t, conn, rawmqtt.Frame(0x82, []byte{0, 1}, []byte{0}, rawmqtt.String("x/y+"), []byte{0}))
	suback := bare.Read(t, conn)
	if ack.Properties.MaximumPacketSize != 0 || ack.Properties.TopicAliasMaximum != 0 || suback[len(suback)-1] != 0 {
		t.Fatalf("mochi no longer shows CONNACK limits untold and x/y+ granted (CONNACK %+v, SUBACK % x): "+
			"the mend in limits/limits.go and limits/protocol.go may go (see doc.go)", ack.Properties, suback)
	}
}

// TestCanaryADayForEveryMessage: mochi's default caps every message at a day and forwards that
// day to MQTT 5 subscribers as the Message Expiry Interval of a message that had none.
func TestCanaryADayForEveryMessage(t *testing.T) {
	server, addr := bare.Serve(t, nil)
	conn := bare.Connect(t, addr, rawmqtt.Connect{ID: "v5", Version: 5, Clean: true})
	bare.Exchange(t, conn, rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		ProtocolVersion: 5, PacketID: 1, Filters: packets.Subscriptions{{Filter: "e", Qos: 1}}}), 0x90)
	pub := bare.Connect(t, addr, rawmqtt.Connect{ID: "pub", Version: 5, Clean: true})
	bare.Write(t, pub, rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish},
		ProtocolVersion: 5, TopicName: "e", Payload: []byte("no expiry")}))
	pk, err := rawmqtt.Decode(bare.Read(t, conn), 5)
	if err != nil {
		t.Fatal(err)
	}
	if server.Options.Capabilities.MaximumMessageExpiryInterval != 86400 || pk.Properties.MessageExpiryInterval == 0 {
		t.Errorf("mochi no longer gives every message a day (cap %d s, forwarded %d s): the mend in limits/limits.go "+
			"and limits/expiry.go may go (see doc.go)", server.Options.Capabilities.MaximumMessageExpiryInterval,
			pk.Properties.MessageExpiryInterval)
	}
}

// TestCanaryZeroConnectLimitsAccepted: mochi decodes Receive Maximum and Maximum Packet Size
// without telling 0 from absent, so an MQTT 5 CONNECT with Receive Maximum 0, a protocol error
// (MQTT 5 §3.1.2.11.3), is accepted.
func TestCanaryZeroConnectLimitsAccepted(t *testing.T) {
	_, addr := bare.Serve(t, nil)
	conn := bare.DialBytes(t, addr, connect5(packets.PropReceiveMaximum, 0, 0))
	if ack, err := rawmqtt.Read(conn); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("mochi no longer accepts a CONNECT with Receive Maximum 0 (% x, %v): the mend in "+
			"limits/connectwatch.go may go (see doc.go)", ack, err)
	}
}

// TestCanaryWillPropertyTwiceAccepted: mochi decodes a will's properties one over the other, so
// an MQTT 5 CONNECT whose will gives Message Expiry twice, a protocol error (MQTT 5 §3.1.3.2),
// is accepted.
func TestCanaryWillPropertyTwiceAccepted(t *testing.T) {
	_, addr := bare.Serve(t, nil)
	expiry := []byte{packets.PropMessageExpiryInterval, 0, 0, 0, 5}
	conn := bare.DialBytes(t, addr, connect5Will(nil, append(bytes.Clone(expiry), expiry...)))
	if ack, err := rawmqtt.Read(conn); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("mochi no longer accepts a will giving Message Expiry twice (% x, %v): the will's part of "+
			"limits/connectwatch.go may go (see doc.go)", ack, err)
	}
}

// TestMochiWritesEachPacketInABufferOfItsOwn: flowConn keeps the slices mochi writes until its
// writer has sent them, without copying them (slowclients.go, pending). That is sound only
// while mochi encodes every packet into a new buffer and never touches it after the write
// (clients.go:559, WritePacket, with ClientNetWriteBufferSize 1 as the broker sets it): this
// fails if a later write changes the bytes of an earlier one.
func TestMochiWritesEachPacketInABufferOfItsOwn(t *testing.T) {
	server, _ := bare.Serve(t, &mqtt.Options{ClientNetWriteBufferSize: 1})
	client, end := net.Pipe()
	rec := &recordingConn{Conn: end}
	go func() { _ = server.EstablishConnection("pipe", rec) }()
	t.Cleanup(func() { client.Close() })
	_ = client.SetDeadline(time.Now().Add(bare.Wait))
	bare.Write(t, client, rawmqtt.Connect{ID: "self", Clean: true, KeepAlive: 60}.Encode())
	bare.Read(t, client) // CONNACK
	bare.Exchange(t, client, rawmqtt.Subscribe(1, "q/#", 1), 0x90)
	for i := range 20 {
		bare.Write(t, client, rawmqtt.Publish("q/x", 1, uint16(10+i), bytes.Repeat([]byte{byte('a' + i)}, 100+i)))
		for range 2 { // its PUBACK and its copy, in either order
			pk := bare.ReadDecoded(t, client)
			if pk.FixedHeader.Type == packets.Publish {
				bare.Write(t, client, rawmqtt.Ack(packets.Puback, pk.PacketID))
			}
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.written) < 40 {
		t.Fatalf("mochi wrote %d packets, want at least 40", len(rec.written))
	}
	for i, p := range rec.written {
		if !bytes.Equal(p, rec.copies[i]) {
			t.Fatalf("write %d changed after mochi wrote it (% x, was % x): flowConn must copy what "+
				"waits for its writer (slowclients.go, Write)", i, p, rec.copies[i])
		}
	}
}

// recordingConn keeps every slice written to it, and a copy of it as it was.
type recordingConn struct {
	net.Conn
	mu              sync.Mutex
	written, copies [][]byte
}

func (r *recordingConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.written, r.copies = append(r.written, p), append(r.copies, bytes.Clone(p))
	r.mu.Unlock()
	return r.Conn.Write(p)
}
