package tests

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"mqttdemo/tests/harness"
)

// TestExamples runs the three short programs of examples/ together, as the README shows them:
// the server prints each client event, the subscriber prints the publisher's messages, Enter on
// the subscriber unsubscribes (and no later message arrives), Enter again ends it, and Ctrl-C
// ends the publisher and the server.
func TestExamples(t *testing.T) {
	b := harness.BuildExamples(t)
	addr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	server := harness.Start(t, "examples/server", b.Server, nil, addr)
	server.WaitFor(t, `msg="attached listener" .*address=`+addr)

	sub, term := harness.StartInTerminal(t, "examples/subscriber", b.Subscriber, nil, "tcp://"+addr)
	sub.WaitFor(t, `^subscribed to mytopic; press Enter to unsubscribe$`)
	server.WaitFor(t, `^connected subscriber-\d+$`)
	server.WaitFor(t, `^subscribed subscriber-\d+ mytopic \(code 0x0\)$`)

	pub := harness.Start(t, "examples/publisher", b.Publisher, nil, "tcp://"+addr)
	pub.WaitFor(t, `^connected to tcp://`+addr+`$`)
	server.WaitFor(t, `^connected publisher-\d+$`)
	sent := pub.WaitCount(t, `^sent time:\S+$`, 2)
	for _, s := range sent[:2] {
		msg := regexp.QuoteMeta(strings.TrimPrefix(s, "sent "))
		sub.WaitFor(t, `^received mytopic `+msg+`$`)
		server.WaitFor(t, `^published publisher-\d+ mytopic `+msg+`$`)
	}

	harness.PressEnter(t, term)
	sub.WaitFor(t, `^unsubscribed from mytopic; press Enter to exit$`)
	server.WaitFor(t, `^unsubscribed subscriber-\d+ mytopic$`)
	// The second message sent from now on leaves the publisher after the broker has dropped the
	// subscription (the first might have been on its way): the subscriber must not print it.
	n := len(pub.Out.Lines(re(`^sent time:`)))
	later := regexp.QuoteMeta(strings.TrimPrefix(pub.WaitCount(t, `^sent time:\S+$`, n+2)[n+1], "sent "))
	server.WaitFor(t, `^published publisher-\d+ mytopic `+later+`$`)

	harness.PressEnter(t, term)
	if code := sub.Exit(t); code != 0 {
		t.Fatalf("subscriber exit status %d, want 0", code)
	}
	if got := sub.Out.Lines(re(`^received mytopic ` + later + `$`)); len(got) > 0 {
		t.Errorf("the subscriber printed %q after it unsubscribed", got)
	}
	server.WaitFor(t, `^disconnected subscriber-\d+ \(disconnected\)$`)

	for _, p := range []*harness.Proc{pub, server} {
		p.Signal(t, syscall.SIGINT)
		if code := p.Exit(t); code != 0 {
			t.Errorf("%s exit status %d after Ctrl-C, want 0", p.Name, code)
		}
	}
	server.WaitFor(t, `^disconnected publisher-\d+ \(disconnected\)$`)
}

// TestExamplesReconnect stops the example server and starts a new one on the same address: the
// clients reconnect by themselves, the subscriber subscribes again (a clean session forgets
// subscriptions) and receives what the publisher sends next.
func TestExamplesReconnect(t *testing.T) {
	b := harness.BuildExamples(t)
	addr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	server := harness.Start(t, "examples/server", b.Server, nil, addr)
	server.WaitFor(t, `msg="attached listener"`)
	sub := harness.Start(t, "examples/subscriber", b.Subscriber, nil, "tcp://"+addr)
	pub := harness.Start(t, "examples/publisher", b.Publisher, nil, "tcp://"+addr)
	sub.WaitFor(t, `^received mytopic time:`)

	server.Signal(t, syscall.SIGINT)
	if code := server.Exit(t); code != 0 {
		t.Fatalf("server exit status %d, want 0", code)
	}
	// Ctrl-C with clients connected: mochi logged each connection's end as `level=WARN msg=""
	// … use of closed network connection`, and the hook said "unsubscribed" for a subscriber
	// whose clean session ended.
	if l := server.Out.Lines(re(`level=WARN|^unsubscribed `)); len(l) > 0 {
		t.Errorf("the server stopped by Ctrl-C printed:\n%s", strings.Join(l, "\n"))
	}
	sub.WaitFor(t, `^connection lost: `)
	pub.WaitFor(t, `^connection lost: `)
	server = harness.Start(t, "examples/server (again)", b.Server, nil, addr)
	server.WaitFor(t, `^subscribed subscriber-\d+ mytopic \(code 0x0\)$`)
	sub.WaitCount(t, `^subscribed to mytopic`, 2)
	// The second message the new server sees from now on comes after the new subscription (the
	// first might have been on its way): it reaches the subscriber.
	n := len(server.Out.Lines(re(`^published `)))
	line := server.WaitCount(t, `^published publisher-\d+ mytopic time:\S+$`, n+2)[n+1]
	sub.WaitFor(t, `^received mytopic `+regexp.QuoteMeta(line[strings.Index(line, "time:"):])+`$`)
}

// TestExampleServerFailedListen: a listen address in use or not an address ends the example
// server at once with the reason and exit status 1. It used to throw AddListener's error away
// and run, listening on nothing.
func TestExampleServerFailedListen(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, c := range []struct{ addr, want string }{
		{taken.Addr().String(), `listen tcp ` + regexp.QuoteMeta(taken.Addr().String()) + `: bind: `},
		{"bogus", `listen tcp: address bogus: missing port in address`},
	} {
		server := harness.Start(t, "examples/server", harness.BuildExamples(t).Server, nil, c.addr)
		if code := server.Exit(t); code != 1 {
			t.Errorf("%s: exit status %d, want 1", c.addr, code)
		}
		if len(server.Out.Lines(re(c.want))) != 1 || len(server.Out.Lines(re(`server started`))) > 0 {
			t.Errorf("%s: want one line matching %q and no start:\n%s", c.addr, c.want, server.Out.String())
		}
	}
}

// TestExamplesAreShort keeps each program of examples/ within 80 lines, as wc -l counts them,
// so that a reader meets the MQTT calls at once.
func TestExamplesAreShort(t *testing.T) {
	for _, prog := range []string{"server", "publisher", "subscriber"} {
		files, err := filepath.Glob(filepath.Join("..", "examples", prog, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("examples/%s: no Go files (%v)", prog, err)
		}
		lines := 0
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			lines += strings.Count(string(data), "\n")
		}
		if lines >= 80 {
			t.Errorf("examples/%s has %d lines, want under 80", prog, lines)
		}
	}
}

// TestExampleSubscriberRefused: a broker that refuses the subscription (SUBACK 0x80) makes the
// example subscriber say so. paho reports the refusal as a success, and the example printed
// "subscribed to mytopic".
func TestExampleSubscriberRefused(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.yaml")
	policy := "anonymous:\n  publish: [\"#\"]\n  subscribe: [\"#\"]\n  deny_subscribe: [mytopic]\n"
	if err := os.WriteFile(users, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	_, url := harness.StartServer(t, nil, "-auth", users)
	sub := harness.Start(t, "examples/subscriber", harness.BuildExamples(t).Subscriber, nil, url)
	sub.WaitFor(t, `^subscribe: refused by the broker \(code 0x80\)$`)
	if l := sub.Out.Lines(re(`^subscribed`)); len(l) > 0 {
		t.Errorf("the subscriber printed %q", l)
	}
}
