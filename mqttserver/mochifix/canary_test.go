package mochifix

// Canaries: each test shows one mochi v2.7.9 flaw that Hook mends (doc.go) on bare mochi, and
// fails once mochi no longer shows it, so that the mend can go.

import (
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/internal/bare"
	"mqttdemo/mqttserver/rawmqtt"
)

// TestCanaryResendOrderShuffled: mochi resends a session's queue sorted by the low 16 bits of
// each message's creation second, from a map: messages queued within one second come back in
// any order.
func TestCanaryResendOrderShuffled(t *testing.T) {
	created := time.Now().Unix()
	for range 10 { // map order is random: a queue of 20 comes back in order about once in 20!
		queue := mqtt.NewInflights()
		for id := uint16(1); id <= 20; id++ {
			queue.Set(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
				PacketID: id, Created: created})
		}
		if !slices.IsSortedFunc(queue.GetAll(false), func(a, b packets.Packet) int {
			return int(a.PacketID) - int(b.PacketID)
		}) {
			return
		}
	}
	t.Fatal("mochi no longer shows a resent queue out of order: the mend in mochifix/resendorder.go may go (see doc.go)")
}

// TestCanaryTakeoverLosesQueued: a publisher that looked up a session just before a new
// connection takes it over queues its message to the old session, which no one reads.
func TestCanaryTakeoverLosesQueued(t *testing.T) {
	gate := &aclGate{client: "resumer", topic: "q/raced", looked: make(chan struct{}), established: make(chan struct{})}
	server, addr := bare.Serve(t, nil, gate)
	offlineSession(t, server, addr, "resumer", "q/#")
	gate.armed.Store(true)

	pub := bare.Connect(t, addr, rawmqtt.Connect{ID: "pub", Clean: true})
	bare.Write(t, pub, rawmqtt.Publish("q/raced", 1, 1, []byte("raced")))
	select { // the publisher has found the old session and waits in its ACL check
	case <-gate.looked:
	case <-time.After(bare.Wait):
		t.Fatal("the publisher never checked the old session")
	}
	back := bare.Connect(t, addr, rawmqtt.Connect{ID: "resumer"}) // takes the session over, then the publisher goes on
	bare.Write(t, pub, rawmqtt.Publish("q/marker", 1, 2, []byte("marker")))
	if got := bare.ReadUntil(t, back, "marker"); slices.Contains(got, "raced") {
		t.Fatal("mochi no longer shows a message queued during a take-over lost: the mend in mochifix/takeover.go may go (see doc.go)")
	}
}

// aclGate holds the read check of topic for client's session, once armed, until a connection
// of client is established.
type aclGate struct {
	mqtt.HookBase
	client, topic string
	armed         atomic.Bool
	lookedOnce    sync.Once
	estOnce       sync.Once
	looked        chan struct{}
	established   chan struct{}
}

func (h *aclGate) ID() string { return "canary-acl-gate" }
func (h *aclGate) Provides(b byte) bool {
	return b == mqtt.OnACLCheck || b == mqtt.OnSessionEstablished
}

func (h *aclGate) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if h.armed.Load() && !write && cl.ID == h.client && topic == h.topic {
		h.lookedOnce.Do(func() { close(h.looked) })
		select {
		case <-h.established:
		case <-time.After(bare.Wait):
		}
	}
	return false // auth.AllowHook, after this one, allows
}

func (h *aclGate) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if h.armed.Load() && cl.ID == h.client {
		h.estOnce.Do(func() { close(h.established) })
	}
}

// TestCanaryPublishBeforeConnack: mochi registers a connection before it writes the CONNACK,
// so a message published in between goes out before the CONNACK.
func TestCanaryPublishBeforeConnack(t *testing.T) {
	h := &onEncode{client: "resumer", kind: packets.Connack, sent: make(chan struct{}, 1)}
	server, addr := bare.Serve(t, nil, h)
	offlineSession(t, server, addr, "resumer", "q/#")
	pub := bare.Connect(t, addr, rawmqtt.Connect{ID: "pub", Clean: true})
	h.do = func(*mqtt.Client) { // as mochi is about to write the CONNACK, a message comes
		if _, err := pub.Write(rawmqtt.Publish("q/x", 0, 0, []byte("early"))); err != nil {
			t.Error(err)
			return
		}
		select { // shorter than the connection's deadline, so that a CONNACK first can be read
		case <-h.sent:
		case <-time.After(bare.Wait / 2):
		}
	}
	h.armed.Store(true)
	conn := bare.Dial(t, addr, rawmqtt.Connect{ID: "resumer"})
	if first := bare.Read(t, conn); first[0]&0xf0 == 0x20 {
		t.Fatal("mochi no longer shows a message sent before the CONNACK: the mend in mochifix/startup.go may go (see doc.go)")
	}
}

// onEncode runs do (once armed) as mochi encodes a packet of type kind to client, and signals
// sent when a PUBLISH to client has been written.
type onEncode struct {
	mqtt.HookBase
	client string
	kind   byte
	armed  atomic.Bool
	once   sync.Once
	do     func(cl *mqtt.Client)
	sent   chan struct{}
}

func (h *onEncode) ID() string { return "canary-on-encode" }
func (h *onEncode) Provides(b byte) bool {
	return b == mqtt.OnPacketEncode || b == mqtt.OnPacketSent
}

func (h *onEncode) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if h.armed.Load() && cl.ID == h.client && pk.FixedHeader.Type == h.kind {
		h.once.Do(func() { h.do(cl) })
	}
	return pk
}

func (h *onEncode) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if h.sent != nil && cl.ID == h.client && pk.FixedHeader.Type == packets.Publish {
		select {
		case h.sent <- struct{}{}:
		default:
		}
	}
}

// TestCanaryAckRecordedNotSent: when mochi cannot write a PUBACK, it returns before it delivers
// the message, and keeps the PUBACK to send at the next connection: the publisher does not send
// the message again, and it is lost.
func TestCanaryAckRecordedNotSent(t *testing.T) {
	h := &onEncode{client: "pub", kind: packets.Puback}
	h.do = func(cl *mqtt.Client) { _ = cl.Net.Conn.Close() } // the connection breaks as the ack goes out
	server, addr := bare.Serve(t, nil, h)
	sub := bare.Connect(t, addr, rawmqtt.Connect{ID: "sub", Clean: true})
	bare.Exchange(t, sub, rawmqtt.Subscribe(1, "q/#", 1), 0x90)
	pub := bare.Connect(t, addr, rawmqtt.Connect{ID: "pub"})
	h.armed.Store(true)
	bare.Write(t, pub, rawmqtt.Publish("q/x", 1, 7, []byte("lost")))
	waitOffline(t, server, "pub")

	pub = bare.Connect(t, addr, rawmqtt.Connect{ID: "pub"})
	resent := bare.Read(t, pub)
	bare.Write(t, pub, rawmqtt.Publish("q/x", 1, 8, []byte("marker")))
	got := bare.ReadUntil(t, sub, "marker")
	if resent[0] != 0x40 || slices.Contains(got, "lost") {
		t.Fatalf("mochi no longer shows an acknowledgement recorded but not sent (at the next connection % x, delivered %q): "+
			"the mend in mochifix/unsentack.go may go (see doc.go)", resent, got)
	}
}

// TestCanaryInflightBelowZero: at a take-over mochi counts the old session's messages as gone
// from $SYS inflight, then again as the new connection completes them.
func TestCanaryInflightBelowZero(t *testing.T) {
	server, addr := bare.Serve(t, nil)
	offlineSession(t, server, addr, "resumer", "q/#")
	pub := bare.Connect(t, addr, rawmqtt.Connect{ID: "pub", Clean: true})
	for id := uint16(1); id <= 3; id++ {
		bare.Exchange(t, pub, rawmqtt.Publish("q/x", 1, id, []byte("m")), 0x40)
	}
	waitFor(t, "three messages in flight", func() bool { return atomic.LoadInt64(&server.Info.Inflight) == 3 })

	back := bare.Connect(t, addr, rawmqtt.Connect{ID: "resumer"})
	for range 3 {
		pk := bare.ReadDecoded(t, back)
		bare.Write(t, back, rawmqtt.Ack(packets.Puback, pk.PacketID))
	}
	bare.Exchange(t, back, rawmqtt.Pingreq(), 0xd0) // the PUBACKs are processed
	if n := atomic.LoadInt64(&server.Info.Inflight); n >= 0 {
		t.Fatalf("mochi no longer shows $SYS inflight below zero (%d): the mend in mochifix/takeover.go (OnQosDropped) may go (see doc.go)", n)
	}
}

// TestCanaryOldConnectionEndsSessionTakenOver: mochi disconnects the old connection before it
// marks the session taken over; the old connection's goroutine, ending in between, ends the
// session (an MQTT 5 session that ends at disconnect): the new connection gets it empty. The
// window is opened by closing the old connection as mochi writes it the DISCONNECT, and
// letting its goroutine finish first, as the scheduler may.
func TestCanaryOldConnectionEndsSessionTakenOver(t *testing.T) {
	var server *mqtt.Server
	var old *mqtt.Client
	h := &onEncode{client: "taken", kind: packets.Disconnect}
	h.do = func(cl *mqtt.Client) {
		if cl != old {
			return
		}
		_ = cl.Net.Conn.Close()
		for deadline := time.Now().Add(bare.Wait); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if _, ok := server.Clients.Get("taken"); !ok { // the old goroutine ended the session
				return
			}
		}
	}
	server, addr := bare.Serve(t, nil, h)
	first := bare.Connect(t, addr, rawmqtt.Connect{ID: "taken", Version: 5, KeepAlive: 60}) // session expiry 0
	bare.Exchange(t, first, rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe},
		ProtocolVersion: 5, PacketID: 1, Filters: packets.Subscriptions{{Filter: "q/#", Qos: 1}}}), 0x90)
	pub := bare.Connect(t, addr, rawmqtt.Connect{ID: "pub", Clean: true})
	bare.Exchange(t, pub, rawmqtt.Publish("q/x", 1, 1, []byte("queued")), 0x40)
	bare.Read(t, first) // in flight, not acknowledged
	old, _ = server.Clients.Get("taken")
	h.armed.Store(true)

	bare.Connect(t, addr, rawmqtt.Connect{ID: "taken", Version: 5, KeepAlive: 60,
		Properties: packets.Properties{SessionExpiryInterval: 60, SessionExpiryIntervalFlag: true}})
	cur, ok := server.Clients.Get("taken")
	if !ok || cur == old {
		t.Fatal("the new connection was not registered")
	}
	if cur.State.Inflight.Len() > 0 || len(cur.State.Subscriptions.GetAll()) > 0 {
		t.Fatal("mochi no longer shows the old connection ending a session being taken over: the mend in mochifix/takeover.go (OnDisconnect) may go (see doc.go)")
	}
}

// TestCanaryDupOnFirstSend (not mended): mochi marks every message of a resumed session DUP,
// also one it never sent.
func TestCanaryDupOnFirstSend(t *testing.T) {
	server, addr := bare.Serve(t, nil)
	offlineSession(t, server, addr, "resumer", "q/#")
	pub := bare.Connect(t, addr, rawmqtt.Connect{ID: "pub", Clean: true})
	bare.Exchange(t, pub, rawmqtt.Publish("q/x", 1, 1, []byte("never sent")), 0x40)
	// mochi acknowledges before it queues: wait for the message in the session (a take-over in
	// between would lose it, another flaw).
	cl, _ := server.Clients.Get("resumer")
	waitFor(t, "the message queued", func() bool { return cl.State.Inflight.Len() == 1 })
	back := bare.Connect(t, addr, rawmqtt.Connect{ID: "resumer"})
	if pk := bare.Read(t, back); pk[0]&0x08 == 0 {
		t.Fatal("mochi no longer shows DUP on a message never sent: the mend in dupfirst.go may go (see doc.go)")
	}
}

// offlineSession leaves the persistent session of id, subscribed to filter at QoS 1, offline.
func offlineSession(t *testing.T, server *mqtt.Server, addr, id, filter string) {
	t.Helper()
	conn := bare.Connect(t, addr, rawmqtt.Connect{ID: id})
	bare.Exchange(t, conn, rawmqtt.Subscribe(1, filter, 1), 0x90)
	bare.Write(t, conn, rawmqtt.Disconnect())
	waitOffline(t, server, id)
}

func waitOffline(t *testing.T, server *mqtt.Server, id string) {
	t.Helper()
	waitFor(t, id+" offline", func() bool {
		cl, ok := server.Clients.Get(id)
		return ok && cl.Closed()
	})
}

// TestCanaryReceiveMaximumStalls: a client with Receive Maximum 2 that acknowledges every
// message stops getting them, with messages left in its session (mochi takes a message sent from
// its quota queue out of the session, so its acknowledgement frees nothing). mochi sends from
// that queue on the client's read goroutine only: once a PINGREQ after the last acknowledgement
// is answered, nothing more comes.
func TestCanaryReceiveMaximumStalls(t *testing.T) {
	server, conn := receiveMaxClient(t, nil)
	got, pending := 0, 0
	for range 100 {
		pk := bare.ReadDecodedV(t, conn, 5)
		switch pk.FixedHeader.Type {
		case packets.Pingresp:
			pending--
		case packets.Publish:
			got++
			bare.Write(t, conn, rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback},
				ProtocolVersion: 5, PacketID: pk.PacketID}))
			bare.Write(t, conn, rawmqtt.Pingreq())
			pending++
		}
		if got > 0 && pending == 0 {
			break
		}
	}
	cl, _ := server.Clients.Get("rm")
	if got == 6 || cl.State.Inflight.Len() == 0 {
		t.Errorf("mochi no longer stalls a client at its Receive Maximum (%d of 6 delivered, %d left): "+
			"the mend in receivemax.go may go (see doc.go)", got, cl.State.Inflight.Len())
	}
}

// TestReceiveMaximumKept: with the Hook, all 6 arrive, in order.
func TestReceiveMaximumKept(t *testing.T) {
	_, conn := receiveMaxClient(t, func(s *mqtt.Server) []mqtt.Hook { return []mqtt.Hook{New(s, slog.New(slog.DiscardHandler))} })
	var got []byte
	for len(got) < 6 {
		pk := bare.ReadDecodedV(t, conn, 5) // bare.Wait at most
		if pk.FixedHeader.Type != packets.Publish {
			continue
		}
		got = append(got, pk.Payload...)
		bare.Write(t, conn, rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback},
			ProtocolVersion: 5, PacketID: pk.PacketID}))
	}
	if string(got) != "012345" {
		t.Errorf("got %q, want 012345", got)
	}
}

// receiveMaxClient serves mochi with hooks and queues 6 QoS 1 messages to a client with Receive
// Maximum 2.
func receiveMaxClient(t *testing.T, hooks func(*mqtt.Server) []mqtt.Hook) (*mqtt.Server, net.Conn) {
	t.Helper()
	if hooks == nil {
		hooks = func(*mqtt.Server) []mqtt.Hook { return nil }
	}
	server, addr := bare.ServeWith(t, &mqtt.Options{InlineClient: true, ClientNetWriteBufferSize: WriteBufferSize}, hooks)
	c := rawmqtt.Connect{ID: "rm", Version: 5, Clean: true}
	c.Properties.ReceiveMaximum = 2
	conn := bare.Connect(t, addr, c)
	bare.Exchange(t, conn, rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		ProtocolVersion: 5, PacketID: 1, Filters: packets.Subscriptions{{Filter: "rm/#", Qos: 1}}}), 0x90)
	for i := range 6 {
		if err := server.Publish("rm/x", []byte{byte('0' + i)}, false, 1); err != nil {
			t.Fatal(err)
		}
	}
	return server, conn
}

// queueOffline leaves a persistent MQTT 5 session of id with props (Receive Maximum, Maximum
// Packet Size), subscribed to q/# at QoS 1, offline, and queues payloads to it.
func queueOffline(t *testing.T, server *mqtt.Server, addr, id string, props packets.Properties, payloads ...[]byte) rawmqtt.Connect {
	t.Helper()
	c := rawmqtt.Connect{ID: id, Version: 5, Properties: props}
	c.Properties.SessionExpiryInterval, c.Properties.SessionExpiryIntervalFlag = 300, true
	conn := bare.Connect(t, addr, c)
	bare.Exchange(t, conn, rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		ProtocolVersion: 5, PacketID: 1, Filters: packets.Subscriptions{{Filter: "q/#", Qos: 1}}}), 0x90)
	conn.Close()
	waitOffline(t, server, id)
	for _, p := range payloads {
		if err := server.Publish("q/x", p, false, 1); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// TestCanaryResumeIgnoresReceiveMaximum: a resumed session's queue is resent whole, past the
// client's Receive Maximum.
func TestCanaryResumeIgnoresReceiveMaximum(t *testing.T) {
	server, addr := bare.Serve(t, &mqtt.Options{InlineClient: true})
	c := queueOffline(t, server, addr, "rm", packets.Properties{ReceiveMaximum: 2},
		[]byte("1"), []byte("2"), []byte("3"), []byte("4"), []byte("5"))
	back := bare.Connect(t, addr, c)
	bare.Write(t, back, rawmqtt.Pingreq())
	sent := 0
	for pk := bare.ReadDecodedV(t, back, 5); pk.FixedHeader.Type != packets.Pingresp; pk = bare.ReadDecodedV(t, back, 5) {
		sent++
	}
	if sent <= 2 {
		t.Errorf("mochi no longer resends past Receive Maximum (%d of 5 before any acknowledgement): "+
			"the mend in receivemax.go (resume) may go (see doc.go)", sent)
	}
}

// TestCanaryTooLargeEndsResume: a queued message larger than the client's Maximum Packet Size
// ends the connection at the resume, before what is queued after it.
func TestCanaryTooLargeEndsResume(t *testing.T) {
	server, addr := bare.Serve(t, &mqtt.Options{InlineClient: true})
	c := queueOffline(t, server, addr, "small", packets.Properties{MaximumPacketSize: 100},
		make([]byte, 500), []byte("after"))
	back := bare.Connect(t, addr, c)
	bare.Write(t, back, rawmqtt.Pingreq())
	for range 5 {
		raw, err := rawmqtt.Read(back)
		if err != nil {
			return // the flaw: the connection ended
		}
		if raw[0] == 0xd0 {
			break
		}
	}
	t.Error("mochi no longer ends a resume on a message too large for the client: the mend in toolarge.go may go (see doc.go)")
}

// TestCanaryResentQoS2Refused: an MQTT 5 client that sends its QoS 2 PUBLISH again before its
// PUBREL (DUP) gets PUBREC 0x91, where MQTT-4.3.3-10 wants a plain PUBREC. Not mended.
func TestCanaryResentQoS2Refused(t *testing.T) {
	_, addr := bare.Serve(t, nil)
	conn := bare.Connect(t, addr, rawmqtt.Connect{ID: "dup", Version: 5, Clean: true})
	pub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2}, ProtocolVersion: 5,
		PacketID: 1, TopicName: "d", Payload: []byte("x")}
	bare.Write(t, conn, rawmqtt.Encode(pub))
	if rec := bare.ReadDecoded(t, conn); rec.FixedHeader.Type != packets.Pubrec || rec.ReasonCode != 0 {
		t.Fatalf("want PUBREC 0, got %v", rec)
	}
	pub.FixedHeader.Dup = true
	bare.Write(t, conn, rawmqtt.Encode(pub))
	rec, err := rawmqtt.Decode(bare.Read(t, conn), 5)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ReasonCode != packets.ErrPacketIdentifierInUse.Code {
		t.Errorf("mochi no longer answers a resent QoS 2 PUBLISH with 0x91 (got %#x): doc.go's item under \"Not mended\" may go", rec.ReasonCode)
	}
}

// TestCanaryEmptyIDPersistentRefusedWith0x80: mochi refuses a 3.1.1 CONNECT with an empty
// client id and CleanSession 0 with CONNACK 0x80, which MQTT 3.1.1 does not have; it wants 0x02.
func TestCanaryEmptyIDPersistentRefusedWith0x80(t *testing.T) {
	_, addr := bare.Serve(t, nil)
	conn := bare.Dial(t, addr, rawmqtt.Connect{ID: "", Clean: false})
	if ack := bare.Read(t, conn); len(ack) != 4 || ack[3] != 0x80 {
		t.Fatalf("mochi no longer answers 0x80 (% x): the mend in mochifix/connack3.go may go (see doc.go)", ack)
	}
}

// TestCanaryUnsupportedLevelRefusedWith0x82: mochi refuses a CONNECT of an unknown protocol
// level with CONNACK 0x82, which MQTT 3.1.1 does not have; it wants 0x01 [MQTT-3.1.2-2].
func TestCanaryUnsupportedLevelRefusedWith0x82(t *testing.T) {
	_, addr := bare.Serve(t, nil)
	conn := bare.Dial(t, addr, rawmqtt.Connect{ID: "old", Version: 6, Clean: true})
	if ack := bare.Read(t, conn); len(ack) != 4 || ack[3] != 0x82 {
		t.Fatalf("mochi no longer answers 0x82 (% x): the mend in mochifix/connack3.go may go (see doc.go)", ack)
	}
}

// TestCanaryMalformedConnect311Answered0x82: mochi answers a 3.1.1 CONNECT with a protocol name
// other than MQTT with CONNACK 0x82, a code MQTT 3.1.1 does not have; it wants the connection
// closed without a CONNACK [MQTT-3.1.4-1].
func TestCanaryMalformedConnect311Answered0x82(t *testing.T) {
	_, addr := bare.Serve(t, nil)
	pk := rawmqtt.Connect{ID: "bad", Clean: true, KeepAlive: 30}.Packet()
	pk.Connect.ProtocolName = []byte("MQTX")
	conn, err := net.DialTimeout("tcp", addr, bare.Wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(bare.Wait))
	bare.Write(t, conn, rawmqtt.Encode(pk))
	if ack := bare.Read(t, conn); len(ack) != 4 || ack[3] != 0x82 {
		t.Fatalf("mochi no longer answers 0x82 (% x): the mend in mochifix/connack3.go (noCodeIn311) may go (see doc.go)", ack)
	}
}

// TestCanaryRetainedTwiceToANewSubscriber: a retained message published between mochi adding a
// subscription and giving it the retained messages reaches the subscriber twice, live and again
// as retained (not mended: doc.go, "Not mended").
func TestCanaryRetainedTwiceToANewSubscriber(t *testing.T) {
	w := &subscribeWindow{inWindow: make(chan struct{}), published: make(chan struct{}), processed: make(chan struct{})}
	_, addr := bare.Serve(t, nil, w)
	pub := bare.Connect(t, addr, rawmqtt.Connect{ID: "pub", Clean: true})
	sub := bare.Connect(t, addr, rawmqtt.Connect{ID: "sub", Clean: true})
	bare.Write(t, sub, rawmqtt.Subscribe(1, "r/#", 0))
	for i, done := range []chan struct{}{w.inWindow, w.processed} {
		select {
		case <-done:
		case <-time.After(bare.Wait):
			t.Fatal("mochi never processed the SUBSCRIBE")
		}
		if i == 0 { // mochi holds the subscription and has not looked the retained messages up
			bare.Write(t, pub, rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
				TopicName: "r/raced", Payload: []byte("raced")}))
		}
	}
	bare.Write(t, pub, rawmqtt.Publish("r/marker", 0, 0, []byte("marker"))) // after every copy of r/raced
	if got := bare.ReadUntil(t, sub, "marker"); len(got) != 2 || got[0] != "raced" || got[1] != "raced" {
		t.Fatalf("mochi no longer delivers a retained message twice to a subscriber being served (got %q): "+
			"see doc.go (Not mended) and TestMaxRetained", got)
	}
}

// subscribeWindow holds the SUBSCRIBE of client "sub" in OnSubscribed (after mochi added the
// subscription, before it looks the retained messages up) until r/raced has been delivered.
type subscribeWindow struct {
	mqtt.HookBase
	inWindow, published, processed chan struct{}
	once                           sync.Once
}

func (w *subscribeWindow) ID() string { return "canary-subscribe-window" }
func (w *subscribeWindow) Provides(b byte) bool {
	return b == mqtt.OnSubscribed || b == mqtt.OnPublished || b == mqtt.OnPacketProcessed
}

func (w *subscribeWindow) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) {
	if cl.ID != "sub" {
		return
	}
	close(w.inWindow)
	select {
	case <-w.published:
	case <-time.After(bare.Wait):
	}
}

func (w *subscribeWindow) OnPublished(_ *mqtt.Client, pk packets.Packet) {
	if pk.TopicName == "r/raced" {
		w.once.Do(func() { close(w.published) })
	}
}

func (w *subscribeWindow) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, _ error) {
	if cl.ID == "sub" && pk.FixedHeader.Type == packets.Subscribe {
		close(w.processed)
	}
}
