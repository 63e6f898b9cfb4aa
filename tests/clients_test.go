package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"mqttdemo/tests/harness"
)

// brokerRun is a way to get a running broker: ours or Mosquitto. The clients must work with both.
type brokerRun struct {
	name  string
	start func(t *testing.T) (proc *harness.Proc, url string)
}

var brokers = []brokerRun{
	{"mqttserver", func(t *testing.T) (*harness.Proc, string) { return harness.StartServer(t, nil) }},
	{"mosquitto", func(t *testing.T) (*harness.Proc, string) { return harness.StartMosquitto(t) }},
}

// eachBroker runs f as a subtest against each broker.
func eachBroker(t *testing.T, f func(t *testing.T, url string)) {
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			_, url := b.start(t)
			f(t, url)
		})
	}
}

func publish(t *testing.T, url string, args ...string) *harness.Proc {
	t.Helper()
	pub := harness.Start(t, "mqttpublisher", harness.Build(t).Publisher, nil, append([]string{"-broker", url}, args...)...)
	if code := pub.Exit(t); code != 0 {
		t.Fatalf("publisher %v: exit status %d, want 0", args, code)
	}
	return pub
}

func subscribe(t *testing.T, url string, args ...string) *harness.Proc {
	t.Helper()
	sub := harness.Start(t, "mqttsubscriber", harness.Build(t).Subscriber, nil, append([]string{"-broker", url}, args...)...)
	sub.WaitFor(t, `SUBSCRIBED`)
	return sub
}

// jsonMessage is what mqttsubscriber -json prints per message.
type jsonMessage struct {
	Topic      string    `json:"topic"`
	Payload    string    `json:"payload"`
	QoS        int       `json:"qos"`
	Retained   bool      `json:"retained"`
	Duplicate  bool      `json:"duplicate"`
	ReceivedAt time.Time `json:"received_at"`
	LatencyMS  *float64  `json:"latency_ms"`
}

// decodeJSON parses every complete line of out as a message, failing the test on anything else.
func decodeJSON(t *testing.T, out string) []jsonMessage {
	t.Helper()
	out = out[:strings.LastIndex(out, "\n")+1] // a line being written is not one yet
	var msgs []jsonMessage
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m jsonMessage
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("stdout line %q is not a message object: %v", sc.Text(), err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// TestCountAndTimeoutExitStatus: -count N exits 0 after N messages; -timeout exits 1 when
// nothing comes, also when no broker answers at all.
func TestCountAndTimeoutExitStatus(t *testing.T) {
	b := harness.Build(t)
	eachBroker(t, func(t *testing.T, url string) {
		sub := subscribe(t, url, "-topic", "count/t", "-count", "3", "-qos", "1")
		publish(t, url, "-topic", "count/t", "-count", "5", "-interval", "0", "-qos", "1", "-message", "m{n}")
		if code := sub.Exit(t); code != 0 {
			t.Fatalf("subscriber -count 3: exit status %d, want 0", code)
		}
		if got := len(sub.Out.Lines(re(`RECEIVED\s+\S+ count/t m\d`))); got != 3 {
			t.Errorf("subscriber -count 3 printed %d messages", got)
		}

		// -timeout counts from the start, connecting included: 3s leaves a loaded machine time to connect.
		start := time.Now()
		idle := harness.Start(t, "mqttsubscriber", b.Subscriber, nil, "-broker", url, "-topic", "nothing/here", "-timeout", "3s")
		if code := idle.Exit(t); code != 1 {
			t.Fatalf("subscriber -timeout 3s with no message: exit status %d, want 1", code)
		}
		idle.WaitFor(t, `^mqttsubscriber: no message arrived in time: waited 3s \(-timeout\)$`)
		if d := time.Since(start); d < 3*time.Second {
			t.Errorf("-timeout 3s ended after %s", d)
		}
	})
	t.Run("no broker", func(t *testing.T) {
		url := fmt.Sprintf("tcp://127.0.0.1:%d", harness.FreePort(t))
		sub := harness.Start(t, "mqttsubscriber", b.Subscriber, nil, "-broker", url, "-timeout", "1500ms")
		if code := sub.Exit(t); code != 1 {
			t.Fatalf("exit status %d, want 1", code)
		}
		// It never connected: it says so, and why, instead of "no message arrived in time".
		sub.WaitFor(t, `^mqttsubscriber: could not connect to the broker within 1.5s \(-timeout\): .*connection refused$`)
		if l := sub.Out.Lines(re(`no message arrived`)); len(l) > 0 {
			t.Errorf("says %q though it never connected", l[0])
		}
	})
}

// TestSubscriberJSON: -json prints one object per message on stdout, talk on stderr; the
// latency is there for time: payloads only.
func TestSubscriberJSON(t *testing.T) {
	b := harness.Build(t)
	eachBroker(t, func(t *testing.T, url string) {
		sub, stdout := harness.StartSplit(t, "mqttsubscriber", b.Subscriber, nil,
			"-broker", url, "-topic", "json/#", "-qos", "2", "-json", "-count", "3")
		sub.WaitFor(t, `SUBSCRIBED`)
		publish(t, url, "-topic", "json/time", "-qos", "1", "-count", "2", "-interval", "0")
		publish(t, url, "-topic", "json/text", "-qos", "2", "-count", "1", "-message", `say "hi" <{n}>`)
		if code := sub.Exit(t); code != 0 {
			t.Fatalf("exit status %d", code)
		}
		msgs := decodeJSON(t, stdout.String())
		if len(msgs) != 3 {
			t.Fatalf("got %d JSON objects, want 3:\n%s", len(msgs), stdout)
		}
		for _, m := range msgs[:2] {
			if m.Topic != "json/time" || !strings.HasPrefix(m.Payload, "time:") || m.QoS != 1 || m.Retained {
				t.Errorf("unexpected message %+v", m)
			}
			if m.LatencyMS == nil || *m.LatencyMS < 0 || *m.LatencyMS > 20000 {
				t.Errorf("latency_ms = %v, want a small positive number", m.LatencyMS)
			}
			if time.Since(m.ReceivedAt) > time.Minute {
				t.Errorf("received_at %s is not now", m.ReceivedAt)
			}
		}
		if m := msgs[2]; m.Topic != "json/text" || m.Payload != `say "hi" <1>` || m.QoS != 2 || m.LatencyMS != nil {
			t.Errorf("unexpected message %+v", m)
		}
		if !strings.Contains(stdout.String(), `"payload":"say \"hi\" <1>"`) {
			t.Errorf("payload not escaped as plain JSON:\n%s", stdout)
		}
	})
}

// TestWildcards: + matches one level, # the rest; other topics are not delivered.
func TestWildcards(t *testing.T) {
	eachBroker(t, func(t *testing.T, url string) {
		sub := subscribe(t, url, "-topic", "sensors/+/temp", "-topic", "alarms/#", "-qos", "1", "-count", "4")
		sub.WaitCount(t, `SUBSCRIBED`, 2)
		for _, topic := range []string{"sensors/kitchen/temp", "sensors/kitchen/humidity", "alarms", "alarms/door/front", "other", "sensors/hall/temp"} {
			publish(t, url, "-topic", topic, "-qos", "1", "-count", "1", "-message", topic)
		}
		if code := sub.Exit(t); code != 0 {
			t.Fatalf("exit status %d", code)
		}
		got := sub.Out.Lines(re(`RECEIVED`))
		want := []string{"sensors/kitchen/temp", "alarms", "alarms/door/front", "sensors/hall/temp"}
		if len(got) != len(want) {
			t.Fatalf("received %d messages, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
		}
		for i, topic := range want {
			if !re(` ` + topic + ` ` + topic + ` \(qos 1\)`).MatchString(got[i]) {
				t.Errorf("message %d: %q, want topic %s", i+1, got[i], topic)
			}
		}
	})
}

// TestRetainedMessage: a subscriber that comes after a retained message still gets it, marked
// retained; a live message is not.
func TestRetainedMessage(t *testing.T) {
	eachBroker(t, func(t *testing.T, url string) {
		publish(t, url, "-topic", "status/door", "-retain", "-qos", "1", "-count", "1", "-message", "open")
		sub := subscribe(t, url, "-topic", "status/door", "-qos", "1", "-count", "2")
		sub.WaitFor(t, `RECEIVED\s+\S+ status/door open \(qos 1, retained\)`)
		publish(t, url, "-topic", "status/door", "-qos", "1", "-count", "1", "-message", "closed")
		sub.WaitFor(t, `RECEIVED\s+\S+ status/door closed \(qos 1\)`)
		if code := sub.Exit(t); code != 0 {
			t.Fatalf("exit status %d", code)
		}
	})
}

// TestLastWill: the broker publishes the will when the publisher dies without DISCONNECT, and
// not when it ends normally.
func TestLastWill(t *testing.T) {
	b := harness.Build(t)
	eachBroker(t, func(t *testing.T, url string) {
		sub := subscribe(t, url, "-topic", "clients/+/status", "-qos", "1")
		will := []string{"-will-topic", "clients/pub1/status", "-will-payload", "gone", "-will-qos", "1", "-keepalive", "2s"}

		polite := harness.Start(t, "mqttpublisher", b.Publisher, nil, append([]string{"-broker", url, "-count", "1"}, will...)...)
		if code := polite.Exit(t); code != 0 {
			t.Fatalf("exit status %d", code)
		}
		pub := harness.Start(t, "mqttpublisher", b.Publisher, nil, append([]string{"-broker", url, "-interval", "100ms"}, will...)...)
		pub.WaitFor(t, `PUBLISHED`)
		pub.Kill(t)
		sub.WaitFor(t, `RECEIVED\s+\S+ clients/pub1/status gone \(qos 1\)`)
		if n := len(sub.Out.Lines(re(`RECEIVED`))); n != 1 {
			t.Errorf("subscriber got %d wills, want 1 (none from the publisher that disconnected)", n)
		}
	})
}

// TestPersistentSession: a -clean=false subscriber with a fixed -id gets, when it comes back,
// the QoS 1 messages published while it was away.
func TestPersistentSession(t *testing.T) {
	eachBroker(t, func(t *testing.T, url string) {
		args := []string{"-topic", "away/#", "-qos", "1", "-clean=false", "-id", "away-sub"}
		first := subscribe(t, url, args...)
		first.WaitFor(t, `CONNECTED\s+to \S+ as away-sub \(persistent session\)`)
		first.Signal(t, syscall.SIGTERM)
		if code := first.Exit(t); code != 0 {
			t.Fatalf("exit status %d", code)
		}
		publish(t, url, "-topic", "away/x", "-qos", "1", "-count", "5", "-interval", "0", "-message", "while away {n}")
		back := harness.Start(t, "mqttsubscriber", harness.Build(t).Subscriber, nil, append([]string{"-broker", url, "-count", "5"}, args...)...)
		if code := back.Exit(t); code != 0 {
			t.Fatalf("exit status %d", code)
		}
		for n := 1; n <= 5; n++ {
			back.WaitFor(t, fmt.Sprintf(`RECEIVED\s+away-sub away/x while away %d \(qos 1`, n))
		}
	})
}

// TestFailover: with two -broker URLs and the first one dead, both clients use the second.
func TestFailover(t *testing.T) {
	eachBroker(t, func(t *testing.T, url string) {
		dead := fmt.Sprintf("tcp://127.0.0.1:%d", harness.FreePort(t))
		sub := harness.Start(t, "mqttsubscriber", harness.Build(t).Subscriber, nil, "-broker", dead, "-broker", url, "-count", "1", "-topic", "fo")
		sub.WaitFor(t, `CONNECTED\s+to `+url+` as`)
		sub.WaitFor(t, `SUBSCRIBED`)
		pub := publish(t, url, "-broker", dead+","+url, "-topic", "fo", "-count", "1", "-qos", "1")
		pub.WaitFor(t, `CONNECTED\s+to `+url+` as`)
		if code := sub.Exit(t); code != 0 {
			t.Fatalf("exit status %d", code)
		}
	})
}

// TestCredentials against Mosquitto with a password file: a bad password is refused with one
// clear line and exit status 5, as mosquitto_sub does; the right one (from MQTT_PASSWORD)
// works and is never printed.
func TestCredentials(t *testing.T) {
	b := harness.Build(t)
	const password = "s3cret-Pa55"
	port := harness.FreePort(t)
	harness.RunMosquitto(t, harness.WriteMosquittoConfig(t, port,
		"allow_anonymous false", "password_file "+harness.MosquittoPasswd(t, "alice", password)), port)
	url := fmt.Sprintf("tcp://127.0.0.1:%d", port)

	for _, bin := range []string{b.Publisher, b.Subscriber} {
		name := bin[strings.LastIndex(bin, "/")+1:]
		for _, c := range []struct{ what, user, pass string }{
			{"wrong password", "alice", "nope"},
			{"unknown user", "mallory", password},
			{"anonymous", "", ""},
		} {
			env := harness.Env("MQTT_USERNAME="+c.user, "MQTT_PASSWORD="+c.pass)
			p := harness.Start(t, name, bin, env, "-broker", url, "-count", "1")
			if code := p.Exit(t); code != 5 {
				t.Errorf("%s, %s: exit status %d, want 5 (not authorised)", name, c.what, code)
			}
			want := name + ": the broker refused the connection: not authorised"
			if out := strings.TrimSpace(p.Out.String()); out != want {
				t.Errorf("%s, %s: output\n%s\nwant the one line\n%s", name, c.what, out, want)
			}
		}
	}
	env := harness.Env("MQTT_USERNAME=alice", "MQTT_PASSWORD="+password)
	sub := harness.Start(t, "mqttsubscriber", b.Subscriber, env, "-broker", url, "-count", "1", "-topic", "secure")
	sub.WaitFor(t, `SUBSCRIBED`)
	pub := harness.Start(t, "mqttpublisher", b.Publisher, env, "-broker", url, "-count", "1", "-topic", "secure", "-qos", "1")
	for _, p := range []*harness.Proc{pub, sub} {
		if code := p.Exit(t); code != 0 {
			t.Errorf("%s with the right password: exit status %d", p.Name, code)
		}
		if strings.Contains(p.Out.String(), password) {
			t.Errorf("%s printed the password", p.Name)
		}
	}
}

// TestBadLoginExit4: a broker answering CONNACK 4 (bad user name or password) makes both
// clients exit 4 with one line. Mosquitto 2.0 answers 5 even then, so a minimal fake answers.
func TestBadLoginExit4(t *testing.T) {
	b := harness.Build(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(harness.Timeout))
				buf := make([]byte, 512)
				if _, err := c.Read(buf); err != nil { // the CONNECT, in one small packet
					return
				}
				_, _ = c.Write([]byte{0x20, 0x02, 0x00, 0x04})
			}()
		}
	}()
	url := "tcp://" + l.Addr().String()
	for _, bin := range []string{b.Publisher, b.Subscriber} {
		name := bin[strings.LastIndex(bin, "/")+1:]
		p := harness.Start(t, name, bin, harness.Env("MQTT_PASSWORD=x"), "-broker", url, "-username", "u")
		if code := p.Exit(t); code != 4 {
			t.Errorf("%s: exit status %d, want 4", name, code)
		}
		want := name + ": the broker refused the connection: bad user name or password"
		if out := strings.TrimSpace(p.Out.String()); out != want {
			t.Errorf("%s: output\n%s\nwant\n%s", name, out, want)
		}
	}
}

// TestMosquittoClientsAgainstOurBroker: mosquitto_pub and mosquitto_sub work with mqttserver,
// at every QoS, retained messages included.
func TestMosquittoClientsAgainstOurBroker(t *testing.T) {
	pubTool, subTool := harness.Tool(t, "mosquitto_pub"), harness.Tool(t, "mosquitto_sub")
	_, url := harness.StartServer(t, nil)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(url, "tcp://"))
	conn := []string{"-h", host, "-p", port}

	sub := harness.Start(t, "mosquitto_sub", subTool, nil, append(conn, "-t", "interop/#", "-q", "2", "-v", "-C", "3", "-W", "20")...)
	// mosquitto_sub prints nothing when subscribed: our own subscriber on the same filter, started
	// after it, tells us when the broker has both subscriptions.
	ours := subscribe(t, url, "-topic", "interop/#", "-count", "3")
	for q := 0; q <= 2; q++ {
		p := harness.Start(t, "mosquitto_pub", pubTool, nil, append(conn, "-t", fmt.Sprintf("interop/q%d", q), "-q", fmt.Sprint(q), "-m", fmt.Sprintf("hello %d", q))...)
		if code := p.Exit(t); code != 0 {
			t.Fatalf("mosquitto_pub -q %d: exit status %d", q, code)
		}
	}
	if code := sub.Exit(t); code != 0 {
		t.Fatalf("mosquitto_sub: exit status %d", code)
	}
	for q := 0; q <= 2; q++ {
		sub.WaitFor(t, fmt.Sprintf(`^interop/q%d hello %d$`, q, q))
		ours.WaitFor(t, fmt.Sprintf(`RECEIVED\s+\S+ interop/q%d hello %d`, q, q))
	}

	// A retained message from our publisher, read by mosquitto_sub afterwards.
	publish(t, url, "-topic", "interop/retained", "-retain", "-qos", "1", "-count", "1", "-message", "kept")
	late := harness.Start(t, "mosquitto_sub", subTool, nil, append(conn, "-t", "interop/retained", "-v", "-C", "1", "-W", "20")...)
	if code := late.Exit(t); code != 0 {
		t.Fatalf("late mosquitto_sub: exit status %d", code)
	}
	late.WaitFor(t, `^interop/retained kept$`)
}

// TestPublisherStoreSurvivesRestart: QoS 1 messages the publisher could not deliver before it
// was killed are kept in -store and delivered by the next run with the same -id.
func TestPublisherStoreSurvivesRestart(t *testing.T) {
	b := harness.Build(t)
	port := harness.FreePort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	server, url := harness.StartServer(t, nil, "-listen", listen)
	store := t.TempDir()
	args := []string{"-broker", url, "-id", "stored-pub", "-clean=false", "-store", store, "-qos", "1", "-topic", "stored", "-message", "kept {n}"}

	pub := harness.Start(t, "mqttpublisher", b.Publisher, nil, append(args, "-interval", "50ms")...)
	pub.WaitFor(t, `PUBLISHED\s+#2 `)
	server.Kill(t)
	pub.WaitFor(t, `LOST`)
	harness.Eventually(t, func() bool { return storedMessages(t, store) >= 3 }, "3 messages in the store")
	pub.Kill(t)
	kept := storedMessages(t, store)

	harness.StartServer(t, nil, "-listen", listen)
	sub := subscribe(t, url, "-topic", "stored", "-qos", "1")
	again := harness.Start(t, "mqttpublisher", b.Publisher, nil, append(args, "-stdin")...) // stdin is empty: only the stored ones
	if code := again.Exit(t); code != 0 {
		t.Fatalf("second run: exit status %d", code)
	}
	again.WaitFor(t, `RESUMING`)
	again.WaitFor(t, fmt.Sprintf(`SUMMARY\s+sent 0, acknowledged 0, dropped 0, unconfirmed 0; resent from the store %d, acknowledged %d`, kept, kept))
	sub.WaitCount(t, `RECEIVED\s+\S+ stored kept \d+ \(qos 1`, kept)
	if n := storedMessages(t, store); n != 0 {
		t.Errorf("%d messages left in the store after they were acknowledged", n)
	}
}

func storedMessages(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "o.") && strings.HasSuffix(e.Name(), ".msg") {
			n++
		}
	}
	return n
}

// TestQoS0DroppedWhileDisconnected: QoS 0 messages that find no connection are reported as
// dropped, one line each, counted in the summary, and the exit status says not all went out.
func TestQoS0DroppedWhileDisconnected(t *testing.T) {
	b := harness.Build(t)
	port := harness.FreePort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	server, url := harness.StartServer(t, nil, "-listen", listen)
	pub := harness.Start(t, "mqttpublisher", b.Publisher, nil, "-broker", url, "-interval", "50ms", "-count", "60")
	pub.WaitFor(t, `PUBLISHED\s+#2 `)
	server.Kill(t)
	pub.WaitCount(t, `DROPPED\s+#\d+ mytopic: not connected, and QoS 0 messages are not kept`, 2)
	harness.StartServer(t, nil, "-listen", listen)
	if code := pub.Exit(t); code != 1 {
		t.Fatalf("exit status %d, want 1 (messages were dropped)", code)
	}
	dropped := len(pub.Out.Lines(re(`DROPPED`)))
	pub.WaitFor(t, fmt.Sprintf(`SUMMARY\s+sent %d, dropped %d$`, 60-dropped, dropped))
	pub.WaitFor(t, fmt.Sprintf(`^mqttpublisher: not every message was delivered: %d dropped, 0 unacknowledged$`, dropped))
}

// TestCredentialsOurBroker: with mqttserver -auth, a bad password is refused (status 5, as
// mochi answers "not authorised"), and a QoS 1 publish to a topic the user may not use, which
// mochi answers by closing the connection, ends the publisher instead of resending for ever.
func TestCredentialsOurBroker(t *testing.T) {
	b := harness.Build(t)
	users := t.TempDir() + "/users.yaml"
	if err := os.WriteFile(users, []byte("users:\n  sensor:\n    password: s3cret\n    publish: [sensors/#]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, url := harness.StartServer(t, nil, "-auth", users)
	bad := harness.Start(t, "mqttpublisher", b.Publisher, harness.Env("MQTT_USERNAME=sensor", "MQTT_PASSWORD=nope"), "-broker", url, "-count", "1")
	if code := bad.Exit(t); code != 5 {
		t.Errorf("wrong password: exit status %d, want 5", code)
	}
	bad.WaitFor(t, `^mqttpublisher: the broker refused the connection: not authorised$`)

	env := harness.Env("MQTT_USERNAME=sensor", "MQTT_PASSWORD=s3cret")
	ok := harness.Start(t, "mqttpublisher", b.Publisher, env, "-broker", url, "-count", "1", "-qos", "1", "-topic", "sensors/7")
	if code := ok.Exit(t); code != 0 {
		t.Errorf("allowed topic: exit status %d, want 0", code)
	}
	denied := harness.Start(t, "mqttpublisher", b.Publisher, env, "-broker", url, "-count", "1", "-qos", "1", "-topic", "admin/x")
	if code := denied.Exit(t); code != 1 {
		t.Errorf("denied topic: exit status %d, want 1", code)
	}
	denied.WaitFor(t, `^mqttpublisher: the broker closed the connection 3 times while #1 to admin/x waited for its acknowledgement: is this client allowed to publish there\?$`)
	denied.WaitFor(t, `SUMMARY\s+sent 1, acknowledged 0, dropped 0, unconfirmed 1`)
}

// TestTLS: over ssl:// the clients trust the broker's certificate through -cafile; without it
// they stop at once with one line, instead of waiting for a broker that will never do.
func TestTLS(t *testing.T) {
	b := harness.Build(t)
	certs := t.TempDir()
	if out, err := exec.Command("bash", "../scripts/gen-certs.sh", certs).CombinedOutput(); err != nil {
		t.Fatalf("gen-certs.sh: %v\n%s", err, out)
	}
	server, _ := harness.StartServer(t, nil, "-tls-listen", "127.0.0.1:0",
		"-tls-cert", certs+"/server.crt", "-tls-key", certs+"/server.key")
	m := regexp.MustCompile(`mqtts=ssl://127\.0\.0\.1:(\d+)`).FindStringSubmatch(server.WaitFor(t, `STARTED`))
	if m == nil {
		t.Fatal("no mqtts= address in the STARTED line")
	}
	url := "ssl://localhost:" + m[1] // the certificate names localhost

	untrusting := harness.Start(t, "mqttsubscriber", b.Subscriber, nil, "-broker", url)
	if code := untrusting.Exit(t); code != 1 {
		t.Errorf("without -cafile: exit status %d, want 1", code)
	}
	untrusting.WaitFor(t, `^mqttsubscriber: TLS: the broker's certificate is not trusted: x509: certificate signed by unknown authority`)

	sub := subscribe(t, url, "-cafile", certs+"/ca.crt", "-count", "1", "-topic", "secure/t")
	sub.WaitFor(t, `CONNECTED\s+to ssl://localhost:`)
	publish(t, url, "-cafile", certs+"/ca.crt", "-count", "1", "-qos", "1", "-topic", "secure/t", "-message", "over TLS")
	if code := sub.Exit(t); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	sub.WaitFor(t, `RECEIVED\s+\S+ secure/t over TLS`)
	publish(t, url, "-insecure", "-count", "1", "-topic", "secure/t")
}

// TestEverySubscriptionRefused: when the broker refuses every filter, the subscriber says so and
// exits 1, as mosquitto_sub does, instead of waiting for messages that cannot come.
func TestEverySubscriptionRefused(t *testing.T) {
	b := harness.Build(t)
	users := t.TempDir() + "/users.yaml"
	if err := os.WriteFile(users, []byte("users:\n  dash:\n    password: pw\n    subscribe: [sensors/#]\n  sensor:\n    password: s3\n    publish: [sensors/#]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, url := harness.StartServer(t, nil, "-auth", users)
	env := harness.Env("MQTT_USERNAME=dash", "MQTT_PASSWORD=pw")
	sub := harness.Start(t, "mqttsubscriber", b.Subscriber, env, "-broker", url, "-topic", "admin/#")
	if code := sub.Exit(t); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	sub.WaitFor(t, `REFUSED\s+the broker refused the subscription to admin/#`)
	sub.WaitFor(t, `^mqttsubscriber: the broker refused every subscription`)

	partly := harness.Start(t, "mqttsubscriber", b.Subscriber, env, "-broker", url, "-topic", "admin/#", "-topic", "sensors/#", "-count", "1")
	partly.WaitFor(t, `SUBSCRIBED\s+sensors/# \(qos 0\)`)
	pub := harness.Start(t, "mqttpublisher", b.Publisher, harness.Env("MQTT_USERNAME=sensor", "MQTT_PASSWORD=s3"),
		"-broker", url, "-topic", "sensors/1", "-count", "1", "-qos", "1")
	for _, p := range []*harness.Proc{pub, partly} {
		if code := p.Exit(t); code != 0 {
			t.Errorf("%s: exit status %d, want 0", p.Name, code)
		}
	}
}

// TestSessionLostIsSaid: a persistent subscriber whose broker comes back without its session (no
// -data) says so when it reconnects: what was queued for it is gone. A broker that kept the
// session (-data) gets no such line.
func TestSessionLostIsSaid(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		lost bool
	}{
		{"in memory", nil, true},
		{"with -data", []string{"-data", t.TempDir()}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			listen := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
			args := append([]string{"-listen", listen}, c.args...)
			server, url := harness.StartServer(t, nil, args...)
			sub := subscribe(t, url, "-topic", "kept/#", "-qos", "1", "-clean=false", "-id", "kept-sub")
			sub.WaitFor(t, `SUBSCRIBED`)
			server.Signal(t, syscall.SIGKILL)
			server.Exit(t)
			sub.WaitFor(t, `LOST`)
			harness.StartServer(t, nil, args...)
			sub.WaitCount(t, `CONNECTED\s+to \S+ as kept-sub \(persistent session\)`, 2)
			sub.WaitCount(t, `SUBSCRIBED`, 2)
			if got := len(sub.Out.Lines(re(`SESSION-LOST\s+the broker kept no session for kept-sub`))); (got > 0) != c.lost {
				t.Errorf("SESSION-LOST lines: %d, want them: %v\n%s", got, c.lost, sub.Out.String())
			}
		})
	}
}
