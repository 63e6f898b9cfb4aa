package broker

import (
	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/health"
	"net"
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
