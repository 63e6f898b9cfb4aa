package broker

import (
	"encoding/json"
	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/health"
	"mqttdemo/mqttserver/livepage"
	"mqttdemo/mqttserver/rawmqtt"
	"net"
	"slices"
	"testing"
)

func TestHealthCheck(t *testing.T) {
	open, openLogs := startBroker(t, Config{})
	locked, logs := startBroker(t, Config{AuthFile: writeAuthFile(t)})
	// A port where nothing listens: bind one, then free it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	for _, c := range []struct {
		name, addr string
		healthy    bool
	}{
		{"anonymous broker", open.Addr(), true},
		{"broker with -auth refuses the probe but answers", locked.Addr(), true},
		{"nothing listening", closed, false},
	} {
		err := health.Check(c.addr)
		if (err == nil) != c.healthy {
			t.Errorf("%s: health.Check(%s) = %v, want healthy=%v", c.name, c.addr, err, c.healthy)
		}
	}
	// mochi logs the visit after it wrote the CONNACK the probe returned on.
	waitFor(t, "the probe's visit in the debug log", func() bool {
		return openLogs.has(t, eventlog.MsgDisconnected, map[string]any{"client": health.ClientID})
	})
	// The probe's refusal is not an intrusion, and its visits every few seconds are not news:
	// both are logged at debug, not info.
	for _, l := range []*logBuffer{logs, openLogs} {
		for _, r := range l.records(t) {
			if r["client"] == health.ClientID && r["level"] != "DEBUG" {
				t.Errorf("probe's %q logged at %v, want DEBUG", r["msg"], r["level"])
			}
		}
	}
	if !openLogs.has(t, eventlog.MsgConnected, map[string]any{"client": health.ClientID}) {
		t.Error("the probe's visit is not in the debug log at all")
	}
}

// TestProbeLookalikeIsSeen: any local client may take the probe's id (healthcheck, no user
// name, from 127.0.0.1). Only one that does exactly what the probe does (CONNECT as it does,
// then DISCONNECT within health.Timeout) is kept to debug lines and off the live page; any other
// is logged at info, its connection included, and shown on the page while connected. It used to
// hide any such client's connect and disconnect lines, and the page hid every client of that id.
func TestProbeLookalikeIsSeen(t *testing.T) {
	probe := rawmqtt.Connect{ID: health.ClientID, Clean: true} // what health.Check sends
	for _, c := range []struct {
		name    string
		connect rawmqtt.Connect
		act     func(t *testing.T, b *Broker, conn net.Conn)
		stays   bool // still connected when the lines are checked
	}{
		{"subscribes and publishes", probe, func(t *testing.T, b *Broker, conn net.Conn) {
			rawExchange(t, conn, rawmqtt.Subscribe(1, "spy/#", 0), 0x90, 1)
			rawExchange(t, conn, rawmqtt.Publish("spy/x", 1, 2, []byte("hidden?")), 0x40, 2)
			base := "http://" + b.endpointAddr(t, "http")
			readEvents(t, base+"/events", "", "", func(ev sseEvent) bool {
				var snap livepage.Snapshot
				if ev.name != "snapshot" || json.Unmarshal([]byte(ev.data), &snap) != nil {
					return false
				}
				return slices.ContainsFunc(snap.Clients, func(c livepage.Client) bool { return c.ID == health.ClientID })
			})
			_, _ = conn.Write(rawmqtt.Disconnect())
		}, false},
		{"pings", probe, func(t *testing.T, _ *Broker, conn net.Conn) {
			rawExchange(t, conn, rawmqtt.Pingreq(), 0xd0, -1)
			_, _ = conn.Write(rawmqtt.Disconnect())
		}, false},
		{"keeps its session", rawmqtt.Connect{ID: health.ClientID}, func(t *testing.T, _ *Broker, conn net.Conn) {
			_, _ = conn.Write(rawmqtt.Disconnect())
		}, false},
		{"leaves a will", rawmqtt.Connect{ID: health.ClientID, Clean: true, WillTopic: "w", WillPayload: []byte("x")},
			func(t *testing.T, _ *Broker, conn net.Conn) { _, _ = conn.Write(rawmqtt.Disconnect()) }, false},
		{"leaves without DISCONNECT", probe, func(t *testing.T, _ *Broker, conn net.Conn) { conn.Close() }, false},
		{"stays longer than the probe", probe, func(*testing.T, *Broker, net.Conn) {}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, logs := startBroker(t, Config{HTTPListen: "127.0.0.1:0"})
			conn, err := net.DialTimeout("tcp", b.Addr(), waitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			rawExchange(t, conn, c.connect.Encode(), 0x20, -1)
			c.act(t, b, conn)
			seen := func(msg string) func() bool {
				return func() bool { return logs.has(t, msg, map[string]any{"client": health.ClientID, "level": "INFO"}) }
			}
			waitFor(t, "the connected line at info", seen(eventlog.MsgConnected))
			if !c.stays {
				waitFor(t, "the disconnected line at info", seen(eventlog.MsgDisconnected))
			}
		})
	}
}
