package broker

import (
	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/limits"
	"slices"
	"strings"
	"testing"
)

// TestDataSurvivesRestart: a retained message and the QoS 1 and 2 messages queued for an offline
// clean-session=false client are delivered by a new broker on the same -data directory.
func TestDataSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b1, _ := startBroker(t, Config{DataDir: dir})

	// A persistent subscriber subscribes, then goes away.
	sub := connect(t, clientOpts(b1.Addr(), "keeper").SetCleanSession(false))
	if err := wait(sub.Subscribe("queue/#", 2, nil)); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	goOffline(t, b1, sub, "keeper")

	pub := connect(t, clientOpts(b1.Addr(), "pub"))
	if err := wait(pub.Publish("state/door", 1, true, "open")); err != nil {
		t.Fatalf("publish retained: %v", err)
	}
	want := []string{"queue/a 1", "queue/a 2", "queue/b 3"}
	for i, m := range want {
		topic, payload, _ := strings.Cut(m, " ")
		if err := wait(pub.Publish(topic, byte(1+i%2), false, payload)); err != nil { // QoS 1, 2, 1
			t.Fatalf("publish %s: %v", m, err)
		}
	}
	pub.Disconnect(100)
	if err := b1.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	b2, logs := startBroker(t, Config{DataDir: dir})
	waitFor(t, "session restored log", func() bool { return logs.has(t, eventlog.MsgRestored, map[string]any{"client": "keeper"}) })
	if !logs.has(t, eventlog.MsgLoaded, map[string]any{"sessions": 1, "subscriptions": 1, "queued": 3, "retained": 1}) {
		t.Error("the loaded line does not count 1 session, 1 subscription, 3 queued and 1 retained message")
	}

	var queued received
	opts := clientOpts(b2.Addr(), "keeper").SetCleanSession(false).SetDefaultPublishHandler(queued.handler)
	connect(t, opts)
	waitFor(t, "the queued messages", func() bool { return len(queued.list()) >= len(want) })
	got := queued.list()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("queued messages after restart = %q, want %q", got, want)
	}

	var retained received
	late := connect(t, clientOpts(b2.Addr(), "late"))
	if err := wait(late.Subscribe("state/#", 1, retained.handler)); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	waitFor(t, "the retained message", func() bool { return len(retained.list()) > 0 })
	if got := retained.list(); got[0] != "state/door open" {
		t.Errorf("retained after restart = %q, want %q", got[0], "state/door open")
	}
}

// TestDataDirLocked: a second broker on the same -data directory fails with a clear error.
func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	startBroker(t, Config{DataDir: dir})
	cfg := Config{Listen: "127.0.0.1:0", DataDir: dir, LogFormat: "json"}
	_, err := New(cfg, eventlog.NewLogger(cfg.logSettings(), new(logBuffer), noEnv), eventlog.NewLogger(cfg.logSettings(), new(logBuffer), noEnv))
	if err == nil || !strings.Contains(err.Error(), "in use by another mqttserver") {
		t.Fatalf("second broker on the same data dir: err = %v, want 'in use by another mqttserver'", err)
	}
}

// TestDataSurvivesSIGKILL: the real binary, killed with SIGKILL right after it acknowledged a
// message, keeps it.
func TestDataSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	p1, started := startBinary(t, "-listen", "127.0.0.1:0", "-data", dir)
	a := addr(t, started, "mqtt")

	sub := connect(t, clientOpts(a, "keeper").SetCleanSession(false))
	if err := wait(sub.Subscribe("queue/#", 1, nil)); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	sub.Disconnect(100)
	waitFor(t, "keeper's connection to end", func() bool {
		return p1.logs.has(t, eventlog.MsgDisconnected, map[string]any{"client": "keeper"})
	})
	pub := connect(t, clientOpts(a, "pub"))
	if err := wait(pub.Publish("state/door", 1, true, "open")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if err := wait(pub.Publish("queue/a", 1, false, "1")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	p1.kill(t) // the moment the PUBACK is in: no chance to flush or close anything

	_, started = startBinary(t, "-listen", "127.0.0.1:0", "-data", dir)
	a = addr(t, started, "mqtt")
	var got received
	connect(t, clientOpts(a, "keeper").SetCleanSession(false).SetDefaultPublishHandler(got.handler))
	waitFor(t, "the queued message", func() bool { return len(got.list()) > 0 })
	var retained received
	late := connect(t, clientOpts(a, "late"))
	if err := wait(late.Subscribe("state/door", 0, retained.handler)); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	waitFor(t, "the retained message", func() bool { return len(retained.list()) > 0 })
	if g := got.list()[0]; g != "queue/a 1" {
		t.Errorf("queued after SIGKILL = %q, want %q", g, "queue/a 1")
	}
	if g := retained.list()[0]; g != "state/door open" {
		t.Errorf("retained after SIGKILL = %q, want %q", g, "state/door open")
	}
}

// TestFailedStartFreesDataFile: a New that fails after opening the store (here: a busy port)
// releases the data file, so the next attempt can open it.
func TestFailedStartFreesDataFile(t *testing.T) {
	dir := t.TempDir()
	busy, _ := startBroker(t, Config{})
	cfg := Config{Listen: busy.Addr(), DataDir: dir, LogFormat: "json", Limits: limits.DefaultLimits()}
	if _, err := New(cfg, eventlog.NewLogger(cfg.logSettings(), new(logBuffer), noEnv), eventlog.NewLogger(cfg.logSettings(), new(logBuffer), noEnv)); err == nil {
		t.Fatal("New on a busy port succeeded")
	}
	startBroker(t, Config{DataDir: dir}) // fails if the data file is still locked
}
