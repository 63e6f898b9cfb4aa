package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"mqttdemo/mqttserver/broker"
	"mqttdemo/tests/harness"
)

// The security suite drives the real programs the way a user would: mqttserver with -auth,
// TLS and limits; mqttpublisher and mqttsubscriber with credentials in flags and variables.
// mqttserver's own package tests check the same rules in-process; these check what a user sees.

// Passwords that are easy to find in a log if one leaks.
const (
	sensorPassword = "Pw-sensor-4f9a1c"
	readerPassword = "Pw-reader-81c2e7"
	wrongPassword  = "Pw-wrong-77d0b3"
)

// authFile writes an -auth file: "sensor" (plain password) may publish under sensors/, "reader"
// (bcrypt hash made by mqttserver -hash-password) may read sensors/+/temp only.
func authFile(t *testing.T) string {
	t.Helper()
	b := harness.Build(t)
	cmd := exec.Command(b.Server, "-hash-password")
	cmd.Stdin = strings.NewReader(readerPassword + "\n")
	hash, err := cmd.Output()
	if err != nil {
		t.Fatalf("mqttserver -hash-password: %v", err)
	}
	yaml := fmt.Sprintf(`users:
  sensor:
    password: %q
    publish: [sensors/#]
  reader:
    bcrypt: %q
    subscribe: [sensors/+/temp]
`, sensorPassword, strings.TrimSpace(string(hash)))
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSecurityCredentials: with -auth, a client without credentials, with an unknown user or
// with a wrong password is refused, and the broker says why. mochi answers MQTT 3.1.1 clients
// with CONNACK 5 (not authorised) rather than 4 (bad user name or password), as Mosquitto does,
// so the clients exit with status 5, as mosquitto_sub.
func TestSecurityCredentials(t *testing.T) {
	b := harness.Build(t)
	server, url := harness.StartServer(t, nil, "-auth", authFile(t))
	for _, c := range []struct {
		name   string
		args   []string
		env    []string
		reason string
	}{
		{"no credentials", nil, nil, `reason="no username"`},
		{"unknown user", []string{"-username", "mallory"}, []string{"MQTT_PASSWORD=" + readerPassword}, `username=mallory reason="unknown user"`},
		{"wrong password", []string{"-username", "reader"}, []string{"MQTT_PASSWORD=" + wrongPassword}, `username=reader reason="wrong password"`},
		{"another user's password", []string{"-username", "reader", "-password", sensorPassword}, nil, `username=reader reason="wrong password"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := strings.ReplaceAll(c.name, " ", "-")
			args := append([]string{"-broker", url, "-id", id, "-topic", "sensors/+/temp", "-timeout", "5s"}, c.args...)
			sub := harness.Start(t, "mqttsubscriber", b.Subscriber, harness.Env(c.env...), args...)
			if code := sub.Exit(t); code != 5 {
				t.Errorf("exit status %d, want 5 (refused: not authorised)", code)
			}
			sub.WaitFor(t, `the broker refused the connection: not authorised`)
			server.WaitFor(t, `AUTH-FAILED\s+client=`+id+` .*`+regexp.QuoteMeta(c.reason))
			if len(server.Out.Lines(re(`CONNECTED\s+client=`+id+` `))) > 0 {
				t.Error("the broker logged the refused client as connected")
			}
		})
	}

	// The right password (bcrypt for reader, plain for sensor) gets through.
	sub := harness.Start(t, "mqttsubscriber", b.Subscriber, harness.Env("MQTT_PASSWORD="+readerPassword),
		"-broker", url, "-id", "good-reader", "-username", "reader", "-topic", "sensors/+/temp", "-count", "1")
	sub.WaitFor(t, `SUBSCRIBED\s+sensors/\+/temp \(qos 0\)`)
	pub := harness.Start(t, "mqttpublisher", b.Publisher, harness.Env("MQTT_PASSWORD="+sensorPassword),
		"-broker", url, "-id", "good-sensor", "-username", "sensor", "-topic", "sensors/kitchen/temp", "-message", "21.5", "-count", "1")
	if code := pub.Exit(t); code != 0 {
		t.Fatalf("publisher with the right password: exit status %d", code)
	}
	if code := sub.Exit(t); code != 0 {
		t.Fatalf("subscriber with the right password: exit status %d", code)
	}
	sub.WaitFor(t, `RECEIVED\s+good-reader sensors/kitchen/temp 21\.5`)
}

// TestSecurityACL: each user reaches only its topics. A subscription whose wildcards could reach
// a topic the user may not read is refused whole; a publish outside the user's topics is
// dropped and logged; nothing forbidden reaches a subscriber.
func TestSecurityACL(t *testing.T) {
	b := harness.Build(t)
	server, url := harness.StartServer(t, nil, "-auth", authFile(t))
	readerEnv := harness.Env("MQTT_PASSWORD=" + readerPassword)
	sensorEnv := harness.Env("MQTT_PASSWORD=" + sensorPassword)

	sub := harness.Start(t, "mqttsubscriber", b.Subscriber, readerEnv, "-broker", url, "-id", "acl-reader",
		"-username", "reader", "-json", "-count", "1",
		"-topic", "#", "-topic", "sensors/#", "-topic", "+/kitchen/temp", "-topic", "sensors/+/temp")
	for _, refused := range []string{"#", "sensors/#", "+/kitchen/temp"} {
		sub.WaitFor(t, `REFUSED\s+the broker refused the subscription to `+regexp.QuoteMeta(refused)+`$`)
	}
	sub.WaitFor(t, `SUBSCRIBED\s+sensors/\+/temp`)

	publish := func(user string, env []string, topic, message string) {
		t.Helper()
		pub := harness.Start(t, "mqttpublisher", b.Publisher, env, "-broker", url, "-id", "acl-pub-"+user,
			"-username", user, "-topic", topic, "-message", message, "-count", "1")
		if code := pub.Exit(t); code != 0 {
			t.Fatalf("publisher %s to %s: exit status %d", user, topic, code)
		}
	}
	// Forbidden first: if any of them got through, it would be the one message the subscriber prints.
	publish("sensor", sensorEnv, "secret/kitchen/temp", "forbidden-topic")
	publish("reader", readerEnv, "sensors/kitchen/temp", "reader-may-not-publish")
	server.WaitFor(t, `DENIED\s+client=acl-pub-sensor username=sensor topic=secret/kitchen/temp`)
	server.WaitFor(t, `DENIED\s+client=acl-pub-reader username=reader topic=sensors/kitchen/temp`)
	publish("sensor", sensorEnv, "sensors/kitchen/temp", "allowed")
	if code := sub.Exit(t); code != 0 {
		t.Fatalf("subscriber exit status %d", code)
	}
	var m struct{ Topic, Payload string }
	line := sub.WaitFor(t, `^\{`)
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatal(err)
	}
	if m.Topic != "sensors/kitchen/temp" || m.Payload != "allowed" {
		t.Errorf("the subscriber's first message is %s %q, want sensors/kitchen/temp \"allowed\"", m.Topic, m.Payload)
	}
}

// TestSecurityTLS: over TLS, a client that does not trust the broker's CA (none given, or
// another CA) cannot connect; one given the CA can.
func TestSecurityTLS(t *testing.T) {
	harness.Tool(t, "openssl")
	b := harness.Build(t)
	certs, otherCA := genCerts(t), genCerts(t)
	server, _ := harness.StartServer(t, nil, "-tls-listen", "127.0.0.1:0",
		"-tls-cert", filepath.Join(certs, "server.crt"), "-tls-key", filepath.Join(certs, "server.key"))
	m := regexp.MustCompile(`mqtts=(ssl://\S+)`).FindStringSubmatch(server.WaitFor(t, `STARTED`))
	if m == nil {
		t.Fatal("no mqtts= address on the STARTED line")
	}
	url := m[1]
	for _, c := range []struct {
		name string
		args []string
	}{
		{"system roots only", nil},
		{"another CA", []string{"-cafile", filepath.Join(otherCA, "ca.crt")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			// -timeout: the client waits for a broker that answers; it must not get that far.
			pub := harness.Start(t, "mqttpublisher", b.Publisher, nil,
				append([]string{"-broker", url, "-id", "untrusting", "-count", "1"}, c.args...)...)
			pub.WaitFor(t, `certificate signed by unknown authority`)
			if strings.Contains(pub.Out.String(), "PUBLISHED") {
				t.Error("a client that does not trust the CA published")
			}
		})
	}
	if n := len(server.Out.Lines(re(`CONNECTED\s+client=untrusting`))); n > 0 {
		t.Errorf("the broker let an untrusting client in %d times", n)
	}
	pub := harness.Start(t, "mqttpublisher", b.Publisher, nil, "-broker", url, "-id", "trusting",
		"-cafile", filepath.Join(certs, "ca.crt"), "-count", "1")
	if code := pub.Exit(t); code != 0 {
		t.Fatalf("publisher with the CA: exit status %d", code)
	}
	server.WaitFor(t, `CONNECTED\s+client=trusting remote=\S+ listener=tls`)
}

// genCerts runs scripts/gen-certs.sh into a new directory.
func genCerts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("../scripts/gen-certs.sh", dir).CombinedOutput(); err != nil {
		t.Fatalf("gen-certs.sh: %v\n%s", err, out)
	}
	return dir
}

// TestSecurityNoPasswordInLogs: at debug level, in both log formats, after right and wrong
// logins with the password as a flag and as a variable, no password appears in the broker's
// output or the clients'.
func TestSecurityNoPasswordInLogs(t *testing.T) {
	b := harness.Build(t)
	auth := authFile(t)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			server, url := harness.StartServer(t, nil, "-auth", auth, "-log-level", "debug", "-log-format", format)
			var outputs []*harness.Output
			run := func(bin string, env []string, args ...string) {
				p := harness.Start(t, filepath.Base(bin), bin, env, append([]string{"-broker", url}, args...)...)
				p.Exit(t)
				outputs = append(outputs, p.Out)
			}
			run(b.Publisher, nil, "-username", "sensor", "-password", sensorPassword, "-topic", "sensors/a/temp", "-count", "1")
			run(b.Publisher, harness.Env("MQTT_PASSWORD="+wrongPassword), "-username", "sensor", "-count", "1")
			// The -timeout lets a slow (loaded, -race) start connect: the refusal ends the first at once.
			run(b.Subscriber, nil, "-username", "reader", "-password", wrongPassword, "-timeout", "15s")
			run(b.Subscriber, harness.Env("MQTT_PASSWORD="+readerPassword), "-username", "reader",
				"-topic", "sensors/+/temp", "-timeout", "3s")
			server.WaitCount(t, `AUTH-FAILED|"authentication failed"`, 2)
			server.WaitCount(t, `(CONNECTED|"client connected").*(sensor|reader)`, 2)
			outputs = append(outputs, server.Out)
			if !strings.Contains(server.Out.String(), "DEBUG") && !strings.Contains(server.Out.String(), `"level":"DEBUG"`) {
				t.Fatal("no debug lines in the broker's log: the test does not test what it should")
			}
			for _, out := range outputs {
				for _, p := range []string{sensorPassword, readerPassword, wrongPassword} {
					if strings.Contains(out.String(), p) {
						t.Errorf("password %q appears in an output:\n%s", p, out.String())
					}
				}
			}
		})
	}
}

// TestSecurityOversizedPacket: a packet over -max-packet-size is refused and its sender
// disconnected, while a message under it goes through. At the default limit (1 MiB), the
// broker refuses from the fixed header alone: it does not wait for (or allocate) the body.
func TestSecurityOversizedPacket(t *testing.T) {
	b := harness.Build(t)
	server, url := harness.StartServer(t, nil, "-max-packet-size", "1024")
	sub := harness.Start(t, "mqttsubscriber", b.Subscriber, nil, "-broker", url, "-id", "size-sub",
		"-topic", "size/#", "-count", "1", "-json")
	sub.WaitFor(t, `SUBSCRIBED`)
	big := harness.Start(t, "mqttpublisher", b.Publisher, nil, "-broker", url, "-id", "too-big",
		"-topic", "size/big", "-message", strings.Repeat("x", 2000), "-count", "1")
	big.Exit(t)
	server.WaitFor(t, `DISCONNECTED\s+client=too-big .*reason=error .*packet too large`)
	small := harness.Start(t, "mqttpublisher", b.Publisher, nil, "-broker", url, "-id", "small",
		"-topic", "size/small", "-message", strings.Repeat("y", 900), "-count", "1")
	if code := small.Exit(t); code != 0 {
		t.Fatalf("publisher of a 900-byte message: exit status %d", code)
	}
	if code := sub.Exit(t); code != 0 {
		t.Fatalf("subscriber exit status %d", code)
	}
	if !strings.Contains(sub.WaitFor(t, `^\{`), `"topic":"size/small"`) {
		t.Error("the subscriber's one message is not the small one")
	}

	// Default limit: a PUBLISH that announces 256 MiB and sends 10 bytes is cut off at once.
	_, defURL := harness.StartServer(t, nil)
	c := dialRaw(t, hostPort(defURL), "announcer", 30*time.Second)
	c.send(t, []byte{0x30, 0xff, 0xff, 0xff, 0x7f, 0, 3, 'a', '/', 'b', 'x', 'x', 'x', 'x', 'x'})
	_ = c.SetReadDeadline(time.Now().Add(harness.Timeout))
	start := time.Now()
	n, err := c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the broker waited %s for the body of a 256 MiB packet", harness.Timeout)
	}
	if n > 0 {
		t.Fatalf("the broker answered a 256 MiB PUBLISH instead of closing the connection")
	}
	t.Logf("a PUBLISH announcing 256 MiB was cut off after %s (%v)", time.Since(start).Round(time.Millisecond), err)
}

// TestSecuritySilentConnectionClosed: a connection that never sends CONNECT, or stops half-way
// through it, on TCP or after a WebSocket upgrade, is closed after broker.ConnectTimeout instead of being held for ever.
func TestSecuritySilentConnectionClosed(t *testing.T) {
	server, url := harness.StartServer(t, nil, "-ws-listen", "127.0.0.1:0")
	wsURL := regexp.MustCompile(`ws=(\S+)`).FindStringSubmatch(server.WaitFor(t, `STARTED`))
	if wsURL == nil {
		t.Fatal("no ws= endpoint in the started line")
	}
	tcp := func(send []byte) func() (net.Conn, error) {
		return func() (net.Conn, error) {
			conn, err := net.DialTimeout("tcp", hostPort(url), harness.Timeout)
			if err == nil {
				_, err = conn.Write(send)
			}
			return conn, err
		}
	}
	cases := []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"nothing", tcp(nil)},
		{"half a CONNECT", tcp([]byte{0x10, 20, 0, 4, 'M', 'Q'})},
		{"nothing after the WebSocket upgrade", func() (net.Conn, error) {
			d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: harness.Timeout}
			ws, _, err := d.Dial(wsURL[1], nil)
			if err != nil {
				return nil, err
			}
			return ws.NetConn(), nil
		}},
	}
	results := make(chan string, len(cases))
	for _, c := range cases {
		go func() {
			conn, err := c.dial()
			if err != nil {
				results <- fmt.Sprintf("%s: %v", c.name, err)
				return
			}
			defer conn.Close()
			start := time.Now()
			_ = conn.SetReadDeadline(start.Add(broker.ConnectTimeout + harness.Timeout))
			_, err = conn.Read(make([]byte, 1))
			held := time.Since(start)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				results <- fmt.Sprintf("%s: still open after %s", c.name, held.Round(time.Second))
				return
			}
			if held < broker.ConnectTimeout-time.Second {
				results <- fmt.Sprintf("%s: closed after %s, before the %s allowed", c.name, held, broker.ConnectTimeout)
				return
			}
			t.Logf("a connection that sent %s was closed after %s", c.name, held.Round(time.Millisecond))
			results <- ""
		}()
	}
	for range cases {
		if r := <-results; r != "" {
			t.Error(r)
		}
	}
}
