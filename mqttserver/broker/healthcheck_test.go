package broker

import (
	"net"
	"testing"
)

func TestHealthCheck(t *testing.T) {
	open, _ := startBroker(t, Config{})
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
		err := HealthCheck(c.addr)
		if (err == nil) != c.healthy {
			t.Errorf("%s: HealthCheck(%s) = %v, want healthy=%v", c.name, c.addr, err, c.healthy)
		}
	}
	// The probe's refusal is not an intrusion: it is logged at debug, not info.
	for _, r := range logs.records(t) {
		if r["msg"] == msgAuthFailed && r["client"] == healthCheckID && r["level"] != "DEBUG" {
			t.Errorf("probe refusal logged at %v, want DEBUG", r["level"])
		}
	}
}
