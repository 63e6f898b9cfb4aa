package broker

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"
	"golang.org/x/crypto/bcrypt"

	"mqttdemo/mqttserver/eventlog"
)

// Passwords of the test auth file; none may appear in any log.
const (
	alicePassword = "alice-Secret-1"
	bobPassword   = "bob-Secret-2"
	wrongPassword = "wrong-Secret-3"
)

// writeAuthFile writes an auth file: alice (plain password) may publish and read sensors/#,
// bob (bcrypt) may read everything but publish nothing.
func writeAuthFile(t testing.TB) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(bobPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	yaml := "users:\n" +
		"  alice:\n    password: " + alicePassword + "\n    publish: [sensors/#]\n    subscribe: [sensors/#]\n" +
		"  bob:\n    bcrypt: \"" + string(hash) + "\"\n    subscribe: [\"#\"]\n"
	path := filepath.Join(t.TempDir(), "auth.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAuthRefusesBadCredentials(t *testing.T) {
	b, logs := startBroker(t, Config{AuthFile: writeAuthFile(t)})
	for _, c := range []struct{ id, user, pass, reason string }{
		{"c1", "alice", wrongPassword, "wrong password"},
		{"c2", "bob", wrongPassword, "wrong password"},
		{"c3", "mallory", wrongPassword, "unknown user"},
		{"c4", "", "", "no username"},
	} {
		opts := clientOpts(b.Addr(), c.id).SetUsername(c.user).SetPassword(c.pass)
		err := wait(paho.NewClient(opts).Connect())
		// mochi answers MQTT 3.1.1 clients 5 (not authorised), as Mosquitto does; 4 would do too.
		if !errors.Is(err, pahopackets.ErrorRefusedNotAuthorised) && !errors.Is(err, pahopackets.ErrorRefusedBadUsernameOrPassword) {
			t.Errorf("%s/%s: connect err = %v, want CONNACK 4 or 5", c.user, c.pass, err)
		}
		waitFor(t, "the refusal log of "+c.id, func() bool {
			return logs.has(t, eventlog.MsgAuthFailed, map[string]any{"client": c.id, "username": c.user, "reason": c.reason})
		})
	}
	for _, r := range logs.records(t) {
		if r["msg"] == eventlog.MsgAuthFailed && !strings.HasPrefix(r["remote"].(string), "127.0.0.1:") {
			t.Errorf("refusal log without the remote address: %v", r)
		}
	}
	connect(t, clientOpts(b.Addr(), "a").SetUsername("alice").SetPassword(alicePassword))
	connect(t, clientOpts(b.Addr(), "b").SetUsername("bob").SetPassword(bobPassword))
	assertNoPasswords(t, logs.String())
}

func assertNoPasswords(t testing.TB, logs string) {
	t.Helper()
	for _, p := range []string{alicePassword, bobPassword, wrongPassword} {
		if strings.Contains(logs, p) {
			t.Errorf("a password (%q) appears in the log", p)
		}
	}
}

func TestACL(t *testing.T) {
	b, logs := startBroker(t, Config{AuthFile: writeAuthFile(t)})
	var aliceGot, bobGot received
	alice := connect(t, clientOpts(b.Addr(), "alice-1").SetUsername("alice").SetPassword(alicePassword))
	bob := connect(t, clientOpts(b.Addr(), "bob-1").SetUsername("bob").SetPassword(bobPassword))

	tok := alice.SubscribeMultiple(map[string]byte{
		"sensors/#": 1, "sensors/+/temp": 1, "#": 1, "+/kitchen": 1, "other": 1,
	}, aliceGot.handler)
	if err := wait(tok); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	want := map[string]byte{"sensors/#": 1, "sensors/+/temp": 1, "#": 0x80, "+/kitchen": 0x80, "other": 0x80}
	for f, code := range tok.(*paho.SubscribeToken).Result() {
		if code != want[f] {
			t.Errorf("SUBACK for %q = %#x, want %#x", f, code, want[f])
		}
	}
	for _, f := range []string{"#", "+/kitchen", "other"} {
		waitFor(t, "the refusal log of "+f, func() bool {
			return logs.has(t, eventlog.MsgSubRefused, map[string]any{"client": "alice-1", "filter": f, "code": "0x80"})
		})
	}
	if err := wait(bob.Subscribe("#", 0, bobGot.handler)); err != nil {
		t.Fatalf("bob subscribe: %v", err)
	}

	// alice may publish under sensors/ only; the other message is dropped and logged.
	if err := wait(alice.Publish("alerts/fire", 0, false, "denied")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if err := wait(alice.Publish("sensors/kitchen/temp", 0, false, "21")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	waitFor(t, "bob to receive the allowed message", func() bool { return len(bobGot.list()) > 0 })
	waitFor(t, "alice to receive her own message", func() bool { return len(aliceGot.list()) > 0 })
	waitFor(t, "the denial log", func() bool {
		return logs.has(t, eventlog.MsgPublishDenied, map[string]any{"client": "alice-1", "username": "alice", "topic": "alerts/fire"})
	})
	// bob may publish nothing: QoS 0 is dropped (QoS 1 from MQTT 3.1.1 makes mochi disconnect).
	if err := wait(bob.Publish("sensors/kitchen/temp", 0, false, "bob")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	waitFor(t, "bob's denial log", func() bool {
		return logs.has(t, eventlog.MsgPublishDenied, map[string]any{"client": "bob-1", "topic": "sensors/kitchen/temp"})
	})
	for _, m := range append(bobGot.list(), aliceGot.list()...) {
		if m != "sensors/kitchen/temp 21" {
			t.Errorf("delivered %q; only %q was allowed", m, "sensors/kitchen/temp 21")
		}
	}
	assertNoPasswords(t, logs.String())
}

// TestAuthMosquittoClients drives the -auth broker with mosquitto_pub and mosquitto_sub: their
// exit status is the CONNACK code on refusal.
func TestAuthMosquittoClients(t *testing.T) {
	needTool(t, "mosquitto_pub")
	needTool(t, "mosquitto_sub")
	b, logs := startBroker(t, Config{AuthFile: writeAuthFile(t)})
	host, port := splitAddr(t, b.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	err := exec.CommandContext(ctx, "mosquitto_pub", "-h", host, "-p", port, "-u", "alice", "-P", wrongPassword,
		"-t", "sensors/x", "-m", "1").Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 4 && exit.ExitCode() != 5 {
		t.Errorf("mosquitto_pub with a wrong password: %v, want exit status 4 or 5", err)
	}

	sub := exec.CommandContext(ctx, "mosquitto_sub", "-h", host, "-p", port, "-u", "bob", "-P", bobPassword,
		"-t", "sensors/#", "-C", "1", "-v", "-i", "mosq-sub")
	out := new(logBuffer)
	sub.Stdout = out
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "mosquitto_sub to subscribe", func() bool {
		return logs.has(t, eventlog.MsgSubscribed, map[string]any{"client": "mosq-sub", "filter": "sensors/#"})
	})
	pub := exec.CommandContext(ctx, "mosquitto_pub", "-h", host, "-p", port, "-u", "alice", "-P", alicePassword,
		"-t", "sensors/door", "-m", "closed", "-q", "1")
	if out, err := pub.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	if err := sub.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v", err)
	}
	if got := strings.TrimSpace(out.String()); got != "sensors/door closed" {
		t.Errorf("mosquitto_sub printed %q, want %q", got, "sensors/door closed")
	}
	assertNoPasswords(t, logs.String())
}

// needTool skips the test when a program is missing, except in CI (CI=true) where it fails.
func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed: run scripts/install-deps.sh", name)
		}
		t.Skipf("%s is not installed (scripts/install-deps.sh installs it)", name)
	}
}

func splitAddr(t testing.TB, a string) (host, port string) {
	t.Helper()
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		t.Fatalf("no port in %q", a)
	}
	return a[:i], a[i+1:]
}

// TestDeniedFloodIsCapped: a client publishing in a loop to a forbidden topic gets at most
// LinesPerSecond lines a second; the rest are counted.
func TestDeniedFloodIsCapped(t *testing.T) {
	b, logs := startBroker(t, Config{AuthFile: writeAuthFile(t)})
	alice := connect(t, clientOpts(b.Addr(), "looper").SetUsername("alice").SetPassword(alicePassword))
	floodAndCount(t, logs, alice, "forbidden", eventlog.MsgPublishDenied, eventlog.MsgDeniedMore)
}

// TestUnknownUserTakesAsLong: a user name not in the file costs a bcrypt check like a wrong
