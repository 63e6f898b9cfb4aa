package broker

import (
	"mqttdemo/mqttserver/eventlog"
	"sync/atomic"
	"testing"
)

// TestDataForgetsAcknowledged: QoS 1 messages a persistent subscriber has acknowledged are
// deleted from -data, so a restarted broker does not send them again (a skipped PUBACK must be
// the publisher's inbound one only, not the subscriber's).
func TestDataForgetsAcknowledged(t *testing.T) {
	dir := t.TempDir()
	b1, _ := startBroker(t, Config{DataDir: dir})
	var got received
	sub := connect(t, clientOpts(b1.Addr(), "acker").SetCleanSession(false).SetDefaultPublishHandler(got.handler))
	if err := wait(sub.Subscribe("acked/#", 1, nil)); err != nil {
		t.Fatal(err)
	}
	pub := connect(t, clientOpts(b1.Addr(), "pub"))
	for _, p := range []string{"1", "2", "3"} {
		if err := wait(pub.Publish("acked/t", 1, false, p)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the three messages", func() bool { return len(got.list()) == 3 })
	waitFor(t, "the subscriber's PUBACKs", func() bool { return atomic.LoadInt64(&b1.server.Info.Inflight) == 0 })
	sub.Disconnect(100)
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}

	_, logs := startBroker(t, Config{DataDir: dir})
	if !logs.has(t, eventlog.MsgLoaded, map[string]any{"sessions": 1, "queued": 0}) {
		t.Errorf("restarted broker loaded acknowledged messages; want 1 session and 0 queued:\n%s", logs)
	}
}
