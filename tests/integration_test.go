package tests

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"mqttdemo/mqttpublisher/publisher"
	"mqttdemo/mqttserver/broker"
	"mqttdemo/mqttserver/limits"
	"mqttdemo/mqttsubscriber/subscriber"
	"mqttdemo/tests/harness"
)

// TestInProcess runs the broker in this process on 127.0.0.1:0 and drives the real Run
// functions of the subscriber and the publisher, as main does.
func TestInProcess(t *testing.T) {
	cfg := broker.Config{Listen: "127.0.0.1:0", LogLevel: slog.LevelInfo, LogFormat: "json", Limits: limits.DefaultLimits()}
	var brokerLog harness.Output
	log := broker.NewLogger(cfg, &brokerLog, noEnv)
	b, err := broker.New(cfg, log, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	url := "tcp://" + b.Addr()

	ctx, cancel := context.WithTimeout(context.Background(), harness.Timeout)
	defer cancel()

	var subOut, subErr harness.Output
	subDone := make(chan error, 1)
	go func() {
		subDone <- subscriber.Run(ctx, []string{"-broker", url, "-id", "in-sub", "-qos", "1", "-count", "5", "-json"},
			noEnv, strings.NewReader(""), &subOut, &subErr)
	}()
	harness.Eventually(t, func() bool { return strings.Contains(brokerLog.String(), `"client":"in-sub","filter":"mytopic"`) },
		"the subscription to reach the broker")

	var pubOut harness.Output
	err = publisher.Run(ctx, []string{"-broker", url, "-id", "in-pub", "-qos", "1", "-count", "5", "-interval", "0", "-message", "m{n}"},
		noEnv, strings.NewReader(""), &pubOut, io.Discard)
	if err != nil {
		t.Fatalf("publisher: %v\n%s", err, pubOut.String())
	}
	select {
	case err := <-subDone:
		if err != nil {
			t.Fatalf("subscriber: %v\n%s", err, subErr.String())
		}
	case <-time.After(harness.Timeout):
		t.Fatal("subscriber did not stop after -count 5")
	}

	lines := strings.Split(strings.TrimSpace(subOut.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("subscriber printed %d JSON lines, want 5:\n%s", len(lines), subOut.String())
	}
	for i, l := range lines {
		want := `{"topic":"mytopic","payload":"m` + string(rune('1'+i)) + `","qos":1,"retained":false,"received_at":"`
		if !strings.HasPrefix(l, want) {
			t.Errorf("line %d = %s, want prefix %s", i, l, want)
		}
	}
	if !strings.Contains(pubOut.String(), "sent 5, acknowledged 5, dropped 0, unconfirmed 0") {
		t.Errorf("publisher summary wrong:\n%s", pubOut.String())
	}
	// mochi logs a publish (OnPublished) after it has queued the copies, and the log is written
	// asynchronously: the subscriber may print the last message before its line is in.
	published := func() int { return strings.Count(brokerLog.String(), `"msg":"message published","client":"in-pub"`) }
	harness.Eventually(t, func() bool { return published() >= 5 }, "the broker to log 5 publishes")
	if n := published(); n != 5 {
		t.Errorf("broker logged %d publishes, want 5:\n%s", n, brokerLog.String())
	}
}

func noEnv(string) string { return "" }
