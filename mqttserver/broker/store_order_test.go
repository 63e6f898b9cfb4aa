package broker

import (
	"encoding/binary"
	"fmt"
	"io"
	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/rawmqtt"
	"mqttdemo/mqttserver/store"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"
)

// TestDataStoredBeforeAck: when a publisher holds its PUBACK (QoS 1) or PUBREC (QoS 2), the
// copy for an offline persistent subscriber is already in the data file, and at QoS 2 so is
// the broker's PUBREC state; after PUBCOMP that state is gone. mochi on its own wrote the
// acknowledgement first, so a SIGKILL right after it lost a message the publisher saw accepted.
func TestDataStoredBeforeAck(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			b, _ := startBroker(t, Config{DataDir: t.TempDir()})
			keeper := connect(t, clientOpts(b.Addr(), "keeper").SetCleanSession(false))
			if err := wait(keeper.Subscribe("orders/#", 2, nil)); err != nil {
				t.Fatal(err)
			}
			goOffline(t, b, keeper, "keeper")

			conn := rawConnect(t, b.Addr(), "raw-pub", false)
			ackType := map[byte]byte{1: 0x40, 2: 0x50}[qos]
			for id := 1; id <= 20; id++ {
				payload := fmt.Sprintf("order %d", id)
				rawExchange(t, conn, rawmqtt.Publish("orders/x", qos, uint16(id), []byte(payload)), ackType, id)
				if !holds(t, b.data, "keeper", func(m storage.Message) bool { return string(m.Payload) == payload }) {
					t.Fatalf("%q acknowledged before its copy for keeper was stored", payload)
				}
				if qos == 1 {
					continue
				}
				isState := func(m storage.Message) bool {
					return m.PacketID == uint16(id) && m.FixedHeader.Type == packets.Pubrec
				}
				if !holds(t, b.data, "raw-pub", isState) {
					t.Fatalf("PUBREC %d sent before the broker stored that it has the message", id)
				}
				rawExchange(t, conn, rawmqtt.Ack(packets.Pubrel, uint16(id)), 0x70, id) // PUBREL → PUBCOMP
				if holds(t, b.data, "raw-pub", isState) {
					t.Fatalf("PUBCOMP %d sent before the broker forgot the message: a new one with this id would be taken for it", id)
				}
			}
		})
	}
}

// TestDataStoresPubrelBeforeSending: the broker's PUBREL for a QoS 2 message it delivered is
// in the data file before the subscriber gets it. mochi on its own changed the state in memory
// only, so after a crash it sent the PUBLISH again to a subscriber that had released it.
func TestDataStoresPubrelBeforeSending(t *testing.T) {
	b, _ := startBroker(t, Config{DataDir: t.TempDir()})
	sub := rawConnect(t, b.Addr(), "rel-sub", false)
	rawExchange(t, sub, rawmqtt.Subscribe(1, "rel/#", 2), 0x90, 1)
	pub := connect(t, clientOpts(b.Addr(), "rel-pub"))
	tok := pub.Publish("rel/x", 2, false, "once")

	_ = sub.SetDeadline(time.Now().Add(10 * time.Second))
	pk, err := rawmqtt.Read(sub)
	if err != nil || pk[0] != 0x34 {
		t.Fatalf("want a QoS 2 PUBLISH, got % x, %v", pk, err)
	}
	topicLen := int(pk[2])<<8 | int(pk[3])
	id := int(pk[4+topicLen])<<8 | int(pk[5+topicLen])
	isRel := func(m storage.Message) bool {
		return m.PacketID == uint16(id) && m.FixedHeader.Type == packets.Pubrel
	}
	rawExchange(t, sub, rawmqtt.Ack(packets.Pubrec, uint16(id)), 0x62, id) // PUBREC → PUBREL
	if !holds(t, b.data, "rel-sub", isRel) {
		t.Fatal("PUBREL sent before the broker stored that the message is released")
	}
	if _, err := sub.Write(rawmqtt.Ack(packets.Pubcomp, uint16(id))); err != nil { // PUBCOMP
		t.Fatal(err)
	}
	waitFor(t, "the completed message to leave the data file", func() bool {
		b.data.Sync()
		return !holds(t, b.data, "rel-sub", func(m storage.Message) bool { return m.PacketID == uint16(id) })
	})
	if err := wait(tok); err != nil {
		t.Fatal(err)
	}
}

// TestDataKeepsOnlyLastingSessions: sessions that end at disconnect (clean session) are not
// written, and records a crash or an older version left of them are dropped at start, with
// any subscription or message whose client is not stored.
func TestDataKeepsOnlyLastingSessions(t *testing.T) {
	dir := t.TempDir()
	b1, _ := startBroker(t, Config{DataDir: dir})
	for _, c := range []struct {
		id    string
		clean bool
	}{{"lasting", false}, {"passing", true}} {
		cl := connect(t, clientOpts(b1.Addr(), c.id).SetCleanSession(c.clean))
		if err := wait(cl.Subscribe("news/#", 1, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if got := keys(t, b1.data); !slices.Equal(got, []string{"CL_lasting", "SUB_lasting:news/#"}) {
		t.Errorf("stored with one lasting and one clean session: %q", got)
	}
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}

	// What a SIGKILL left with mochi's own bolt hook: a clean session and its subscription,
	// and the subscription of a client that is gone.
	db, err := bbolt.Open(filepath.Join(dir, store.DataFile), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket([]byte(store.BucketName))
		for key, rec := range map[string]interface{ MarshalBinary() ([]byte, error) }{
			"CL_crashed":         &storage.Client{ID: "crashed", T: storage.ClientKey, Clean: true, ProtocolVersion: 4},
			"SUB_crashed:news/#": &storage.Subscription{ID: "SUB_crashed:news/#", T: storage.SubscriptionKey, Client: "crashed", Filter: "news/#", Qos: 1},
			"IFM_crashed:1":      &storage.Message{ID: "IFM_crashed:1", T: storage.InflightKey, Client: "crashed", PacketID: 1, TopicName: "news/a", FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}},
			"SUB_ghost:news/#":   &storage.Subscription{ID: "SUB_ghost:news/#", T: storage.SubscriptionKey, Client: "ghost", Filter: "news/#", Qos: 1},
		} {
			v, err := rec.MarshalBinary()
			if err != nil {
				return err
			}
			if err := bk.Put([]byte(key), v); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	b2, logs := startBroker(t, Config{DataDir: dir})
	if !logs.has(t, eventlog.MsgLoaded, map[string]any{"sessions": 1, "subscriptions": 1, "queued": 0}) {
		t.Errorf("want only the lasting session loaded:\n%s", logs)
	}
	if subs := b2.server.Topics.Subscribers("news/a"); len(subs.Subscriptions) != 1 {
		t.Errorf("subscribers of news/a after restart: %v, want only lasting", subs.Subscriptions)
	}
	if got := keys(t, b2.data); !slices.Equal(got, []string{"CL_lasting", "SUB_lasting:news/#"}) {
		t.Errorf("data file after start: %q", got)
	}
}

// rawConnect opens an MQTT 3.1.1 connection without a client library, to see each packet.
func rawConnect(t testing.TB, addr, id string, clean bool) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rawExchange(t, conn, rawmqtt.Connect{ID: id, Clean: clean, KeepAlive: 60}.Encode(), 0x20, -1)
	return conn
}

// connectV5 is an MQTT 5 CONNECT, keep-alive 60, with a session expiry interval (0: none sent).
func connectV5(id string, cleanStart bool, expiry uint32) []byte {
	c := rawmqtt.Connect{ID: id, Version: 5, Clean: cleanStart, KeepAlive: 60}
	c.Properties.SessionExpiryInterval, c.Properties.SessionExpiryIntervalFlag = expiry, expiry > 0
	return c.Encode()
}

// subscribeV5 is an MQTT 5 SUBSCRIBE, packet id 1 and no properties, to filter at QoS 1.
func subscribeV5(filter string) []byte {
	return rawmqtt.Encode(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Subscribe},
		ProtocolVersion: 5,
		PacketID:        1,
		Filters:         packets.Subscriptions{{Filter: filter, Qos: 1}},
	})
}

// rawExchange sends pk and reads the answer, which must be of type want (and, unless id < 0,
// carry that packet id).
func rawExchange(t testing.TB, conn net.Conn, pk []byte, want byte, id int) {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(pk); err != nil {
		t.Fatal(err)
	}
	got, err := rawmqtt.Read(conn)
	if err != nil {
		t.Fatalf("waiting for %#x: %v", want, err)
	}
	if got[0] != want || (id >= 0 && int(binary.BigEndian.Uint16(got[2:4])) != id) {
		t.Fatalf("got % x, want type %#x id %d", got, want, id)
	}
}

// holds reports whether the data file has an in-flight record of client that match accepts.
func holds(t *testing.T, s *store.Store, client string, match func(storage.Message) bool) bool {
	t.Helper()
	msgs, err := s.StoredInflightMessages()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Client == client && match(m) {
			return true
		}
	}
	return false
}

// keys lists the data file's keys (bbolt keeps them sorted), once everything appended so far is committed.
func keys(t *testing.T, s *store.Store) []string {
	t.Helper()
	all, err := s.Keys()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range all {
		if !strings.HasPrefix(k, storage.RetainedKey+"_$") {
			out = append(out, k)
		}
	}
	return out
}

// TestDataSlowConsumerStallsNoOneElse: with mochi's own blocking writes (no FlowControl), a
// subscriber that stops reading blocks the publisher feeding it (mochi writes under the
// client's lock), but with -data no one else: another client still connects and gets its
// PUBACK. The store once held a lock across mochi's delivery that its committer needed, and
// every acknowledgement in the broker waited.
func TestDataSlowConsumerStallsNoOneElse(t *testing.T) {
	for _, data := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "data"}[data], func(t *testing.T) {
			cfg := Config{blockingWrites: true}
			if data {
				cfg.DataDir = t.TempDir()
			}
			b, _ := startBroker(t, cfg)
			stallSlow(t, b, "slow/#", "slow/x")

			other := rawConnect(t, b.Addr(), "other", false)
			rawExchange(t, other, rawmqtt.Publish("unrelated", 1, 1, []byte("hello")), 0x40, 1)
		})
	}
}

// stallSlow connects a subscriber to filter that never reads, and a feeder publishing big QoS 1
// messages to topic until mochi blocks it (NextPacketID, under the slow client's lock: b needs
// Config.blockingWrites). It returns the slow subscriber's connection: closing it frees the feeder.
func stallSlow(t *testing.T, b *Broker, filter, topic string) net.Conn {
	t.Helper()
	sub := notReading(t, b.Addr(), rawmqtt.Connect{ID: "slow", KeepAlive: 60}.Encode(), filter)

	feeder := rawConnect(t, b.Addr(), "feeder", true)
	big := rawmqtt.Publish(topic, 1, 1, []byte(strings.Repeat("x", 64<<10)))
	go func() { // bounded: 300 messages, ends when the connection does
		for i := 1; i <= 300; i++ {
			big[len(big)-(64<<10)-2], big[len(big)-(64<<10)-1] = byte(i>>8), byte(i)
			_ = feeder.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := feeder.Write(big); err != nil {
				return
			}
		}
	}()
	go func() { _, _ = io.Copy(io.Discard, feeder) }() // its PUBACKs
	waitFor(t, "the feeder to block on the slow subscriber", func() bool { return goroutineWaitingIn("NextPacketID") })
	return sub
}

// TestDataRetainedKeepsTheNewest: a QoS 2 retained message whose delivery mochi holds up (a
// slow subscriber) must not overwrite, in the data file, a newer retained message on the same
// topic stored meanwhile: a restart would bring back the older one.
func TestDataRetainedKeepsTheNewest(t *testing.T) {
	b, _ := startBroker(t, Config{DataDir: t.TempDir(), blockingWrites: true})
	slow := stallSlow(t, b, "r/#", "r/feed")

	p := rawConnect(t, b.Addr(), "p-lasting", false)
	older := rawmqtt.Publish("r/t", 2, 7, []byte("A"))
	older[0] |= 1                             // RETAIN
	if _, err := p.Write(older); err != nil { // its PUBREC comes once the slow one is gone
		t.Fatal(err)
	}
	retained := func(want string) func() bool {
		return func() bool { m, ok := b.server.Topics.Retained.Get("r/t"); return ok && string(m.Payload) == want }
	}
	waitFor(t, "A retained in memory", retained("A"))
	q := rawConnect(t, b.Addr(), "q", true)
	newer := rawmqtt.Publish("r/t", 0, 0, []byte("B"))
	newer[0] |= 1
	if _, err := q.Write(newer); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "B retained in memory", retained("B"))
	slow.Close() // frees the delivery of A
	_ = p.SetDeadline(time.Now().Add(10 * time.Second))
	if got, err := rawmqtt.Read(p); err != nil || got[0] != 0x50 {
		t.Fatalf("no PUBREC: % x %v", got, err)
	}
	b.data.Sync()
	msgs, err := b.data.StoredRetainedMessages()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.TopicName == "r/t" && string(m.Payload) != "B" {
			t.Errorf("data file keeps retained %q for r/t, memory has \"B\"", m.Payload)
		}
	}
}

// TestDataLastingTakeoverOfEndingSession: an MQTT 5 client with session expiry 0 (not stored)
// is taken over by a connection with expiry > 0 and Clean Start 0; mochi hands it the old
// session. Its subscription and queued message must be stored then: mochi's resends (DUP)
// are not stored again, and inherited subscriptions never pass OnSubscribed.
func TestDataLastingTakeoverOfEndingSession(t *testing.T) {
	b, _ := startBroker(t, Config{DataDir: t.TempDir()})
	old, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { old.Close() })
	rawExchange(t, old, connectV5("v5", true, 0), 0x20, -1)
	rawExchange(t, old, subscribeV5("v/t"), 0x90, 1)
	pub := rawConnect(t, b.Addr(), "pub", true)
	rawExchange(t, pub, rawmqtt.Publish("v/t", 1, 1, []byte("queued")), 0x40, 1)
	_ = old.SetReadDeadline(time.Now().Add(10 * time.Second))
	if pk, err := rawmqtt.Read(old); err != nil || pk[0]>>4 != 3 {
		t.Fatalf("old connection: % x %v", pk, err)
	} // and never acknowledged

	next, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { next.Close() })
	_ = next.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := next.Write(connectV5("v5", false, 3600)); err != nil {
		t.Fatal(err)
	}
	if ack, err := rawmqtt.Read(next); err != nil || ack[0] != 0x20 || ack[2]&1 != 1 {
		t.Fatalf("want CONNACK with session present, got % x %v", ack, err)
	}
	if pk, err := rawmqtt.Read(next); err != nil || pk[0]>>4 != 3 {
		t.Fatalf("want the queued message again, got % x %v", pk, err)
	}
	// Stored once mochi has established the session, right after the resend.
	waitFor(t, "the session, its subscription and its queued message in the data file", func() bool {
		keys := keys(t, b.data)
		for _, prefix := range []string{"CL_v5", "SUB_v5:v/t", "IFM_v5:"} {
			if !slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, prefix) }) {
				return false
			}
		}
		return true
	})
}

// goroutineWaitingIn reports whether a goroutine is blocked on a lock inside fn.
func goroutineWaitingIn(fn string) bool {
	buf := make([]byte, 1<<22)
	n := runtime.Stack(buf, true)
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		if strings.Contains(g, fn) && (strings.Contains(g, "sync.(*Mutex).Lock") || strings.Contains(g, "semacquire")) {
			return true
		}
	}
	return false
}

// TestDataKeyTooLong: a retained message whose topic is longer than a bbolt key can be (32 KiB;
// MQTT allows 64 KiB) is not saved, and says so, but it does not jam the store: bbolt refuses
// the whole transaction, which would hold back every acknowledgement.
func TestDataKeyTooLong(t *testing.T) {
	b, logs := startBroker(t, Config{DataDir: t.TempDir()})
	pub := rawConnect(t, b.Addr(), "long", true)
	for i, topic := range []string{strings.Repeat("t", 40_000), "short"} {
		pk := rawmqtt.Publish(topic, 1, uint16(i+1), []byte("x"))
		pk[0] |= 1 // RETAIN
		rawExchange(t, pub, pk, 0x40, i+1)
	}
	if !slices.Contains(keys(t, b.data), "RET_short") {
		t.Errorf("the retained message after the long one was not saved: %q", keys(t, b.data))
	}
	if !strings.Contains(logs.String(), "too long for a key") {
		t.Errorf("no error logged for the topic too long to save:\n%s", logs)
	}
}
