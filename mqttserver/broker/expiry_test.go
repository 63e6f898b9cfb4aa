package broker

import (
	"bytes"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"

	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/rawmqtt"
	"mqttdemo/mqttserver/store"
)

// day is mochi's default maximum message expiry, which the broker no longer applies.
const day = 24 * time.Hour

// dialV5 opens a raw MQTT 5 connection; sessionExpiry 0 ends the session at disconnect.
func dialV5(t testing.TB, addr, id string, cleanStart bool, sessionExpiry uint32) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rawExchange(t, conn, connectV5(id, cleanStart, sessionExpiry), 0x20, -1)
	return conn
}

// publishV5 publishes at QoS 1 with packet id id and waits for the PUBACK; expiry 0 sends no
// Message Expiry Interval.
func publishV5(t testing.TB, conn net.Conn, id uint16, topic, payload string, retain bool, expiry uint32) {
	t.Helper()
	rawExchange(t, conn, rawmqtt.Encode(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: retain},
		ProtocolVersion: 5,
		PacketID:        id,
		TopicName:       topic,
		Payload:         []byte(payload),
		Properties:      packets.Properties{MessageExpiryInterval: expiry},
	}), 0x40, int(id))
}

// readV5Until reads the PUBLISH packets of an MQTT 5 connection, acknowledging each, until one
// on topic last, and returns them all (the last included), by topic.
func readV5Until(t testing.TB, conn net.Conn, last string) map[string]packets.Packet {
	t.Helper()
	got := map[string]packets.Packet{}
	for range 1000 {
		_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
		raw, err := rawmqtt.Read(conn)
		if err != nil {
			t.Fatalf("waiting for a message on %s (got %v): %v", last, slices.Sorted(maps.Keys(got)), err)
		}
		pk, err := rawmqtt.Decode(raw, 5)
		if err != nil {
			t.Fatalf("decode % x: %v", raw, err)
		}
		if pk.FixedHeader.Type != packets.Publish {
			continue
		}
		if pk.FixedHeader.Qos > 0 {
			if _, err := conn.Write(rawmqtt.Ack(packets.Puback, pk.PacketID)); err != nil {
				t.Fatal(err)
			}
		}
		got[pk.TopicName] = pk
		if pk.TopicName == last {
			return got
		}
	}
	t.Fatalf("no message on %s in 1000 packets", last)
	return nil
}

// ageDataFile moves the time every stored message was received back by age.
func ageDataFile(t *testing.T, dir string, age time.Duration) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dir, store.DataFile), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(store.BucketName))
		aged := map[string][]byte{}
		for _, kind := range []string{storage.RetainedKey, storage.InflightKey} {
			c := b.Cursor()
			prefix := []byte(kind + "_")
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				var m storage.Message
				if err := m.UnmarshalBinary(v); err != nil {
					return err
				}
				m.Created -= int64(age / time.Second)
				if aged[string(k)], err = m.MarshalBinary(); err != nil {
					return err
				}
			}
		}
		for k, v := range aged {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitRetainedExpired publishes a retained message that expires in a second, and waits until
// mochi's once-a-second sweep has deleted it. The sweep that deletes it comes after the
// broker's first sweep (the message cannot expire sooner than a second after it is published,
// and the first sweep comes at most a second after the start): whatever that first sweep was
// to delete is gone by then.
func waitRetainedExpired(t *testing.T, b *Broker, logs *logBuffer, conn net.Conn, topic string) {
	t.Helper()
	publishV5(t, conn, 99, topic, "expires", true, 1)
	waitFor(t, "mochi's sweep to delete "+topic, func() bool {
		return logs.has(t, "retained message expired", map[string]any{"topic": topic})
	})
}

// TestDataOlderThanADay: messages stored more than a day ago (the records of the -data file
// aged by 25 hours, then the broker restarted) are kept: a retained message without expiry is
// sent to a new subscriber and a queued one to its session; mochi's one-day maximum deleted
// both, silently, the second after the start. A publisher's MQTT 5 expiry is restored from the
// file: a retained message given an hour is gone, one given 30 days is sent, with what is left
// of its interval.
func TestDataOlderThanADay(t *testing.T) {
	dir := t.TempDir()
	b1, _ := startBroker(t, Config{DataDir: dir})
	keeper := connect(t, clientOpts(b1.Addr(), "keeper").SetCleanSession(false))
	if err := wait(keeper.Subscribe("queue/#", 1, nil)); err != nil {
		t.Fatal(err)
	}
	goOffline(t, b1, keeper, "keeper")
	pub := connect(t, clientOpts(b1.Addr(), "pub"))
	if err := wait(pub.Publish("state/plain", 1, true, "kept")); err != nil {
		t.Fatal(err)
	}
	if err := wait(pub.Publish("queue/a", 1, false, "queued")); err != nil {
		t.Fatal(err)
	}
	pub5 := dialV5(t, b1.Addr(), "pub5", true, 0)
	publishV5(t, pub5, 1, "state/month", "month", true, 30*24*3600)
	publishV5(t, pub5, 2, "state/hour", "hour", true, 3600)
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}
	ageDataFile(t, dir, day+time.Hour)

	b2, logs := startBroker(t, Config{DataDir: dir})
	waitRetainedExpired(t, b2, logs, dialV5(t, b2.Addr(), "pub5", true, 0), "sentinel/expiring")

	sub := dialV5(t, b2.Addr(), "late", true, 0)
	rawExchange(t, sub, subscribeV5("state/#"), 0x90, 1)
	// mochi queues a new subscriber's retained messages after the SUBACK, on the subscriber's
	// goroutine: the marker, published once the two that must come have come, follows them all.
	got := readV5Until(t, sub, "state/plain")
	if _, ok := got["state/month"]; !ok {
		maps.Copy(got, readV5Until(t, sub, "state/month"))
	}
	publishV5(t, dialV5(t, b2.Addr(), "marker", true, 0), 1, "state/zz-marker", "after", false, 0)
	maps.Copy(got, readV5Until(t, sub, "state/zz-marker"))
	if pk, ok := got["state/plain"]; !ok || string(pk.Payload) != "kept" || pk.Properties.MessageExpiryInterval != 0 {
		t.Errorf("retained message without expiry, 25 h old: got %q, expiry %d s (present %v), want it, without an expiry",
			pk.Payload, pk.Properties.MessageExpiryInterval, ok)
	}
	if _, ok := got["state/hour"]; ok {
		t.Error("a retained message whose publisher gave it an hour, 25 h old, was sent")
	}
	left := uint32((30*day - day - time.Hour) / time.Second)
	if pk, ok := got["state/month"]; !ok || pk.Properties.MessageExpiryInterval > left || pk.Properties.MessageExpiryInterval < left-60 {
		t.Errorf("retained message given 30 days, 25 h old: expiry %d s (present %v), want it with an expiry of about %d s",
			pk.Properties.MessageExpiryInterval, ok, left)
	}

	var queued received
	connect(t, clientOpts(b2.Addr(), "keeper").SetCleanSession(false).SetDefaultPublishHandler(queued.handler))
	waitFor(t, "the queued message", func() bool { return len(queued.list()) > 0 })
	if got := queued.list(); !slices.Equal(got, []string{"queue/a queued"}) {
		t.Errorf("queued message 25 h old: got %q", got)
	}
	if logs.has(t, eventlog.MsgDropped, nil) {
		t.Error("a message was dropped")
	}
}

// TestQueuedOlderThanADay: a message queued more than a day ago to an offline persistent
// session is still delivered when its client comes back.
func TestQueuedOlderThanADay(t *testing.T) {
	b, _ := startBroker(t, Config{})
	offlineSession(t, b, "old", "q/#")
	pub := connect(t, clientOpts(b.Addr(), "pub"))
	if err := wait(pub.Publish("q/t", 1, false, "aged")); err != nil {
		t.Fatal(err)
	}
	cl, _ := b.server.Clients.Get("old")
	for _, pk := range cl.State.Inflight.GetAll(false) {
		pk.Created -= int64((day + time.Hour) / time.Second)
		cl.State.Inflight.Set(pk)
	}
	// A message that expires in a second, queued after: once mochi's sweep has taken it, that
	// sweep or an earlier one has seen the aged message.
	publishV5(t, dialV5(t, b.Addr(), "pub5", true, 0), 1, "q/t", "expires", false, 1)
	queued := func() bool {
		for _, pk := range cl.State.Inflight.GetAll(false) {
			if string(pk.Payload) == "expires" {
				return true
			}
		}
		return false
	}
	// mochi writes the PUBACK before it queues the message: wait for it to be queued first.
	waitFor(t, "the expiring message to be queued", queued)
	waitFor(t, "mochi's sweep to delete the expiring message", func() bool { return !queued() })

	var got received
	connect(t, clientOpts(b.Addr(), "old").SetCleanSession(false).SetDefaultPublishHandler(got.handler))
	if err := wait(pub.Publish("q/t", 1, false, "marker")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the marker", func() bool { return slices.Contains(got.list(), "q/t marker") })
	if l := got.list(); !slices.Equal(l, []string{"q/t aged", "q/t marker"}) {
		t.Errorf("got %q, want the message queued 25 h ago, then the marker", l)
	}
}

// TestMessageExpiryForwarded: an MQTT 5 subscriber gets a Message Expiry Interval only when the
// publisher set one, and then no more than it set (mochi forwarded its one-day maximum for
// every message); a message whose expiry passed while it waited, queued or retained, is not
// sent, even in the second before mochi's sweep would take it.
func TestMessageExpiryForwarded(t *testing.T) {
	b, _ := startBroker(t, Config{})
	pub := dialV5(t, b.Addr(), "pub5", true, 0)

	// Sent at once.
	sub := dialV5(t, b.Addr(), "sub5", true, 0)
	rawExchange(t, sub, subscribeV5("e/#"), 0x90, 1)
	publishV5(t, pub, 1, "e/none", "none", false, 0)
	publishV5(t, pub, 2, "e/some", "some", false, 60)
	got := readV5Until(t, sub, "e/some")
	if mei := got["e/none"].Properties.MessageExpiryInterval; mei != 0 {
		t.Errorf("no expiry set: forwarded with a Message Expiry Interval of %d s", mei)
	}
	if mei := got["e/some"].Properties.MessageExpiryInterval; mei == 0 || mei > 60 {
		t.Errorf("expiry 60 s: forwarded with %d s", mei)
	}

	// Queued to an offline session, and retained.
	later := dialV5(t, b.Addr(), "later", true, 300)
	rawExchange(t, later, subscribeV5("q/#"), 0x90, 1)
	_, _ = later.Write(rawmqtt.Disconnect())
	waitFor(t, "the session to be offline", func() bool { cl, ok := b.server.Clients.Get("later"); return ok && cl.Closed() })
	publishV5(t, pub, 3, "q/short", "short", true, 1)
	publishV5(t, pub, 4, "q/long", "long", false, 60)
	publishV5(t, pub, 5, "q/none", "none", false, 0)
	received := time.Now().Unix() // the broker's receive time of q/short is no later
	// MQTT's expiry is in whole seconds: q/short has expired once the clock passes its second.
	waitFor(t, "q/short to expire", func() bool { return time.Now().Unix() > received+1 })
	publishV5(t, pub, 6, "q/zz-end", "end", false, 0)

	again := dialV5(t, b.Addr(), "later", false, 300)
	got = readV5Until(t, again, "q/zz-end")
	if _, ok := got["q/short"]; ok {
		t.Error("a queued message whose expiry had passed was sent")
	}
	if mei := got["q/long"].Properties.MessageExpiryInterval; mei == 0 || mei > 59 {
		t.Errorf("queued 2 s with expiry 60 s: forwarded with %d s, want at most 59", mei)
	}
	if pk, ok := got["q/none"]; !ok || pk.Properties.MessageExpiryInterval != 0 {
		t.Errorf("queued without expiry: expiry %d s (present %v), want it without an expiry", pk.Properties.MessageExpiryInterval, ok)
	}

	fresh := dialV5(t, b.Addr(), "fresh", true, 0)
	rawExchange(t, fresh, subscribeV5("q/#"), 0x90, 1)
	publishV5(t, pub, 7, "q/zz-end", "end", false, 0)
	if got := readV5Until(t, fresh, "q/zz-end"); len(got) != 1 {
		t.Errorf("a new subscriber got %v, want only the marker (the retained message has expired)", slices.Sorted(maps.Keys(got)))
	}
}

// TestExpiredInflightLoggedOnceCapped: mochi's expiry sweep reports each expired message twice;
// the log says each once, and a flood of them in one summary line a second, not a line each.
func TestExpiredInflightLoggedOnceCapped(t *testing.T) {
	const n = 3*eventlog.LinesPerSecond + 50 // more than two of the cap's seconds hold
	b, logs := startBroker(t, Config{})
	sub := dialV5(t, b.Addr(), "offline", true, 3600)
	rawExchange(t, sub, subscribeV5("exp/#"), 0x90, 1)
	sub.Close()
	pub := dialV5(t, b.Addr(), "pub", true, 0)
	for i := range n {
		publishV5(t, pub, uint16(i+1), "exp/x", "m", false, 1)
	}
	// The messages may expire in one sweep or, on a slow machine, in two seconds' sweeps: every
	// one is told once, one by one or in a summary's count, and single lines keep to the cap.
	var ids map[any]int
	perSecond := map[string]int{}
	waitFor(t, "every expired message told", func() bool {
		ids, perSecond = map[any]int{}, map[string]int{}
		summed := 0
		for _, r := range logs.records(t) {
			if r["msg"] != eventlog.MsgDropped {
				continue
			}
			if c, ok := r["count"].(float64); ok {
				summed += int(c)
			} else if r["client"] == "offline" {
				ids[r["packet_id"]]++
				perSecond[r["time"].(string)[:19]]++
			}
		}
		return len(ids)+summed >= n
	})
	for id, k := range ids {
		if k != 1 {
			t.Errorf("packet %v logged %d times, want once", id, k)
		}
	}
	// The cap's second runs from the broker's start, not the clock's: a clock second can hold
	// the end of one and the start of the next.
	for second, k := range perSecond {
		if k > 2*eventlog.LinesPerSecond {
			t.Errorf("%d single lines in the second %s, want at most %d", k, second, 2*eventlog.LinesPerSecond)
		}
	}
}
