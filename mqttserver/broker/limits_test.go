package broker

import (
	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/limits"
	"strings"
	"testing"
	"time"
)

func TestOversizedPacketRefused(t *testing.T) {
	lim := limits.DefaultLimits()
	lim.MaxPacketSize = 1024
	b, logs := startBroker(t, Config{Limits: lim})
	var got received
	sub := connect(t, clientOpts(b.Addr(), "sub"))
	if err := wait(sub.Subscribe("big/#", 0, got.handler)); err != nil {
		t.Fatal(err)
	}
	pub := connect(t, clientOpts(b.Addr(), "big-pub"))
	_ = pub.Publish("big/one", 0, false, strings.Repeat("x", 2000)) // the broker drops the connection
	waitFor(t, "the sender to be disconnected", func() bool {
		return logs.has(t, eventlog.MsgDisconnected, map[string]any{"client": "big-pub", "reason": "error"})
	})
	if !strings.Contains(logs.String(), "packet too large") {
		t.Error("the disconnect does not say the packet was too large")
	}
	small := connect(t, clientOpts(b.Addr(), "small-pub"))
	if err := wait(small.Publish("big/two", 0, false, "fits")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the small message", func() bool { return len(got.list()) > 0 })
	if l := got.list(); len(l) != 1 || l[0] != "big/two fits" {
		t.Errorf("delivered %q, want only the small message", l)
	}
}

func TestKeepAliveFloor(t *testing.T) {
	b, logs := startBroker(t, Config{}) // default floor: 5 s
	connect(t, clientOpts(b.Addr(), "fast").SetKeepAlive(2*time.Second))
	connect(t, clientOpts(b.Addr(), "slow").SetKeepAlive(60*time.Second))
	waitFor(t, "both connections", func() bool {
		return logs.has(t, eventlog.MsgConnected, map[string]any{"client": "fast", "keepalive": 5}) &&
			logs.has(t, eventlog.MsgConnected, map[string]any{"client": "slow", "keepalive": 60})
	})
}
