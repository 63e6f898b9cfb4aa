package tests

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"mqttdemo/tests/harness"
)

// TestEndToEnd runs the article's demo with the real binaries: broker, subscriber at a terminal,
// publisher; then Enter unsubscribes and Enter again exits, and SIGINT stops the broker.
func TestEndToEnd(t *testing.T) {
	b := harness.Build(t)
	server, url := harness.StartServer(t, nil)

	sub, term := harness.StartInTerminal(t, "mqttsubscriber", b.Subscriber, nil, "-broker", url, "-id", "e2e-sub")
	sub.WaitFor(t, `SUBSCRIBED\s+mytopic \(qos 0\)`)

	pub := harness.Start(t, "mqttpublisher", b.Publisher, nil, "-broker", url, "-id", "e2e-pub", "-count", "3", "-interval", "100ms")
	if code := pub.Exit(t); code != 0 {
		t.Fatalf("publisher exit status %d, want 0", code)
	}
	if got := len(pub.Out.Lines(re(`PUBLISHED\s+#\d mytopic time:\S+ \(qos 0, sent\)`))); got != 3 {
		t.Errorf("publisher printed %d success lines, want 3", got)
	}
	pub.WaitFor(t, `SUMMARY\s+sent 3, dropped 0$`) // QoS 0: no "acknowledged"

	received := sub.WaitCount(t, `RECEIVED\s+e2e-sub mytopic time:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`, 3)
	if len(received) != 3 {
		t.Errorf("subscriber printed %d messages, want 3:\n%s", len(received), strings.Join(received, "\n"))
	}

	harness.PressEnter(t, term)
	sub.WaitFor(t, `UNSUBSCRIBED\s+mytopic; press Enter to exit`)
	harness.PressEnter(t, term)
	if code := sub.Exit(t); code != 0 {
		t.Fatalf("subscriber exit status %d, want 0", code)
	}

	for _, want := range []string{
		`CONNECTED\s+client=e2e-sub remote=127\.0\.0\.1:\d+ listener=tcp protocol=4 clean=true`,
		`SUBSCRIBED\s+client=e2e-sub filter=mytopic granted_qos=0`,
		`CONNECTED\s+client=e2e-pub `,
		`PUBLISHED\s+client=e2e-pub topic=mytopic qos=0 retain=false bytes=29`,
		`DISCONNECTED\s+client=e2e-pub .*reason=normal`,
		`UNSUBSCRIBED\s+client=e2e-sub filter=mytopic`,
		`DISCONNECTED\s+client=e2e-sub .*reason=normal`,
	} {
		server.WaitFor(t, want)
	}
	if n := len(server.Out.Lines(re(`PUBLISHED\s+client=e2e-pub`))); n != 3 {
		t.Errorf("server logged %d publishes, want 3", n)
	}

	server.Signal(t, syscall.SIGINT)
	if code := server.Exit(t); code != 0 {
		t.Fatalf("server exit status %d after SIGINT, want 0", code)
	}
	server.WaitFor(t, `STOPPED`)
}

// TestPublisherWaitsForBroker starts the publisher first, as a newcomer might: it must wait, say
// so, and publish once the broker is up.
func TestPublisherWaitsForBroker(t *testing.T) {
	b := harness.Build(t)
	port := harness.FreePort(t)
	url := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	pub := harness.Start(t, "mqttpublisher", b.Publisher, nil, "-broker", url, "-count", "2", "-interval", "50ms", "-qos", "1")
	pub.WaitFor(t, `WAITING\s+no broker answers yet`)

	harness.StartServer(t, nil, "-listen", fmt.Sprintf("127.0.0.1:%d", port))
	pub.WaitCount(t, `PUBLISHED\s+#\d mytopic time:\S+ \(qos 1, acknowledged in`, 2)
	if code := pub.Exit(t); code != 0 {
		t.Fatalf("publisher exit status %d, want 0", code)
	}
}

// TestServerStopsOnEnter is the article's "press any key to stop" at a terminal.
func TestServerStopsOnEnter(t *testing.T) {
	b := harness.Build(t)
	server, term := harness.StartInTerminal(t, "mqttserver", b.Server, nil, "-listen", "127.0.0.1:0")
	server.WaitFor(t, `press Enter to stop the server`)
	harness.PressEnter(t, term)
	if code := server.Exit(t); code != 0 {
		t.Fatalf("server exit status %d, want 0", code)
	}
	server.WaitFor(t, `STOPPED`)
}

// TestSignalsEndClientsCleanly: SIGTERM makes both clients disconnect and exit 0.
func TestSignalsEndClientsCleanly(t *testing.T) {
	b := harness.Build(t)
	server, url := harness.StartServer(t, nil)
	sub := harness.Start(t, "mqttsubscriber", b.Subscriber, nil, "-broker", url, "-id", "sig-sub")
	pub := harness.Start(t, "mqttpublisher", b.Publisher, nil, "-broker", url, "-id", "sig-pub", "-interval", "50ms")
	sub.WaitFor(t, `RECEIVED\s+sig-sub mytopic time:`)
	for _, p := range []*harness.Proc{pub, sub} {
		p.Signal(t, syscall.SIGTERM)
		if code := p.Exit(t); code != 0 {
			t.Errorf("%s exit status %d after SIGTERM, want 0", p.Name, code)
		}
	}
	pub.WaitFor(t, `SUMMARY\s+sent \d+, dropped 0$`)
	server.WaitFor(t, `DISCONNECTED\s+client=sig-pub .*reason=normal`)
	server.WaitFor(t, `DISCONNECTED\s+client=sig-sub .*reason=normal`)
}
