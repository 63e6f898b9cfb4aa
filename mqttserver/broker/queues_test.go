package broker

import (
	"fmt"
	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/limits"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// offlineSession makes a persistent session subscribed to filter at QoS 1 and leaves it offline.
func offlineSession(t *testing.T, b *Broker, id, filter string) {
	t.Helper()
	c := paho.NewClient(clientOpts(b.Addr(), id).SetCleanSession(false))
	if err := wait(c.Connect()); err != nil {
		t.Fatal(err)
	}
	if err := wait(c.Subscribe(filter, 1, nil)); err != nil {
		t.Fatal(err)
	}
	goOffline(t, b, c, id)
}

// publishEach publishes count QoS 1 messages to q/t, payload(i) each, one after the other.
func publishEach(t *testing.T, pub paho.Client, count int, payload func(int) string) {
	t.Helper()
	for i := range count {
		if err := wait(pub.Publish("q/t", 1, false, payload(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOfflineSessionBytesLimit: an offline session keeps the oldest messages that fit in
// -max-queued-bytes (payload, topic and 2 KiB each); the rest are dropped, counted in $SYS and
// logged, and gone from the data file too. The session gets exactly the ones kept.
func TestOfflineSessionBytesLimit(t *testing.T) {
	for _, data := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "data"}[data], func(t *testing.T) {
			const keep, count, size = 10, 25, 1000
			lim := limits.DefaultLimits()
			lim.MaxQueuedBytes = keep * (size + len("q/t") + limits.QueuedOverhead)
			cfg := Config{Limits: lim}
			if data {
				cfg.DataDir = t.TempDir()
			}
			b, logs := startBroker(t, cfg)
			offlineSession(t, b, "late", "q/#")
			pub := connect(t, clientOpts(b.Addr(), "pub"))
			pad := strings.Repeat("x", size-3)
			publishEach(t, pub, count, func(i int) string { return fmt.Sprintf("%02d %s", i, pad) })
			// mochi acknowledges a QoS 1 message before it delivers it
			waitFor(t, "the drops counted", func() bool { return atomic.LoadInt64(&b.server.Info.MessagesDropped) >= count-keep })
			if n := atomic.LoadInt64(&b.server.Info.MessagesDropped); n != count-keep {
				t.Errorf("$SYS dropped %d, want %d", n, count-keep)
			}
			if !logs.has(t, eventlog.MsgDropped, map[string]any{"client": "late", "topic": "q/t", "reason": limits.ReasonSessionBytes}) {
				t.Error("no message dropped line")
			}
			if data {
				b.data.Sync()
				stored, err := b.data.StoredInflightMessages()
				if err != nil {
					t.Fatal(err)
				}
				if len(stored) != keep {
					t.Errorf("data file holds %d queued messages, want %d", len(stored), keep)
				}
			}
			var got received
			connect(t, clientOpts(b.Addr(), "late").SetCleanSession(false).SetDefaultPublishHandler(got.handler))
			// The broker holds a message published now until it has resent the session, and a
			// QoS 0 one takes no room in it: whatever the session holds comes before it.
			if err := wait(pub.Publish("q/t", 0, false, "sentinel")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the sentinel", func() bool { return slices.Contains(got.list(), "q/t sentinel") })
			l := got.list()
			l = l[:slices.Index(l, "q/t sentinel")]
			if len(l) != keep {
				t.Fatalf("the session got %d messages, want %d", len(l), keep)
			}
			for i, m := range l {
				if want := fmt.Sprintf("q/t %02d ", i); !strings.HasPrefix(m, want) {
					t.Errorf("message %d is %.10q, want %q…", i, m, want)
				}
			}
		})
	}
}

// TestOfflineSessionMessagesLimit: past -max-queued-messages mochi drops the copies; they join
// $SYS/broker/messages/dropped and one summary line a second.
func TestOfflineSessionMessagesLimit(t *testing.T) {
	lim := limits.DefaultLimits()
	lim.MaxQueuedMessages = 5
	b, logs := startBroker(t, Config{Limits: lim})
	offlineSession(t, b, "late", "q/#")
	pub := connect(t, clientOpts(b.Addr(), "pub"))
	publishEach(t, pub, 20, strconv.Itoa)
	summed := func() (n float64) {
		for _, r := range logs.records(t) {
			if r["msg"] == eventlog.MsgDropped && r["reason"] == limits.ReasonSessionMessages {
				n += r["count"].(float64)
			}
		}
		return n
	}
	// The summary adds to $SYS first and logs after: wait for the line, then check both.
	waitFor(t, "15 drops summed up", func() bool { return summed() >= 15 })
	if n := summed(); n != 15 {
		t.Errorf("summary lines count %v drops, want 15", n)
	}
	if n := atomic.LoadInt64(&b.server.Info.MessagesDropped); n != 15 {
		t.Errorf("$SYS counts %d drops, want 15", n)
	}
	if cl, _ := b.server.Clients.Get("late"); cl.State.Inflight.Len() != 5 {
		t.Errorf("session holds %d messages, want 5", cl.State.Inflight.Len())
	}
}

// TestMaxSessions: past -max-sessions a new client id is refused; a known one comes back.
func TestMaxSessions(t *testing.T) {
	lim := limits.DefaultLimits()
	lim.MaxSessions = 2
	b, logs := startBroker(t, Config{Limits: lim})
	offlineSession(t, b, "kept", "a/#")
	online := connect(t, clientOpts(b.Addr(), "online"))
	c := paho.NewClient(clientOpts(b.Addr(), "third"))
	if err := wait(c.Connect()); err == nil || !strings.Contains(strings.ToLower(err.Error()), "server unavailable") {
		t.Errorf("third session: err %v, want refused (server unavailable)", err)
	}
	waitFor(t, "the refusal line", func() bool {
		return logs.has(t, eventlog.MsgConnectRefused, map[string]any{"client": "third", "max_sessions": 2.0})
	})
	connect(t, clientOpts(b.Addr(), "kept").SetCleanSession(false)) // its own session
	online.Disconnect(50)
	waitFor(t, "the clean session to end", func() bool { _, ok := b.server.Clients.Get("online"); return !ok })
	connect(t, clientOpts(b.Addr(), "third"))
}

// TestSessionExpiry: a 3.1.1 persistent session ends -session-expiry after its client went.
func TestSessionExpiry(t *testing.T) {
	lim := limits.DefaultLimits()
	lim.SessionExpiry = time.Second
	b, logs := startBroker(t, Config{Limits: lim})
	offlineSession(t, b, "gone", "a/#")
	waitFor(t, "the session to expire", func() bool { _, ok := b.server.Clients.Get("gone"); return !ok })
	if !logs.has(t, eventlog.MsgExpired, map[string]any{"client": "gone"}) {
		t.Error("no session expired line")
	}
}
