package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mqttdemo/mqttserver/rawmqtt"
	"mqttdemo/tests/harness"
)

// What a reload of the auth file takes away is gone at once: a removed user's pending will and
// its live-page stream. And a client id is one user's from its first CONNECT on, even when two
// users race for a new one.

const (
	keeperPassword = "Pw-keeper-3a61f0"
	alicePassword  = "Pw-alice-90d4e2"
	bobPassword    = "Pw-bob-1c7b55"
)

// noDataRace fails the test if the broker, built with -race when the tests run with it, found
// a data race.
func noDataRace(t *testing.T, server *harness.Proc) {
	t.Helper()
	if strings.Contains(server.Out.String(), "DATA RACE") {
		t.Error("the broker found a data race")
	}
}

// revocationUsers is the auth file of these tests, without the users named in gone.
func revocationUsers(gone ...string) string {
	users := []struct{ name, password, rules string }{
		{"sensor", sensorPassword, "publish: [sensors/#]"},
		{"keeper", keeperPassword, "publish: [sensors/#]"},
		{"watcher", watcherPassword, `subscribe: ["#"]`},
		{"viewer", otherPassword, `subscribe: ["#"]`},
		{"alice", alicePassword, "publish: [alice/#]"},
		{"bob", bobPassword, "publish: [bob/#]"},
	}
	var b strings.Builder
	b.WriteString("users:\n")
	for _, u := range users {
		if !slices.Contains(gone, u.name) {
			fmt.Fprintf(&b, "  %s:\n    password: %q\n    %s\n", u.name, u.password, u.rules)
		}
	}
	return b.String()
}

// connectDelayedWill connects an MQTT 5 client with a persistent session and a will delayed by
// delay, and returns the connection.
func connectDelayedWill(t *testing.T, addr, id, user, password, topic string, delay uint32) net.Conn {
	t.Helper()
	pk := rawmqtt.Connect{ID: id, Version: 5, KeepAlive: 30, User: user, Password: password,
		WillTopic: topic, WillPayload: []byte("will of " + id), WillQoS: 1}.Packet()
	pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 3600, true
	pk.Connect.WillProperties.WillDelayInterval = delay
	c, err := net.DialTimeout("tcp", addr, harness.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{c}
	rc.send(t, rawmqtt.Encode(pk))
	if ack := rc.read(t); len(ack) < 4 || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK for %s: % x", id, ack)
	}
	return c
}

// TestSecurityRevokedUserDelayedWillWithdrawn: an MQTT 5 will with a delay, pending because its
// connection has closed, is withdrawn when a reload removes its user (as Mosquitto does) or
// narrows its topics, and delivered when its user and topic stay. The kept will is due two
// seconds after the others: when it arrives, they would have gone out a pass of mochi's will
// timer earlier, so it is the sentinel that proves nothing else came.
func TestSecurityRevokedUserDelayedWillWithdrawn(t *testing.T) {
	dir := t.TempDir()
	auth := writeFile(t, dir, "users.yaml", revocationUsers())
	server, url := harness.StartServer(t, nil, "-auth", auth)
	watcher := mustConnect(t, pahoOpts(url, "delayed-watcher").SetUsername("watcher").SetPassword(watcherPassword))
	var got inbox
	if err := waitToken(watcher.Subscribe("sensors/#", 1, got.handler)); err != nil {
		t.Fatal(err)
	}
	removed := connectDelayedWill(t, hostPort(url), "delayed-removed", "sensor", sensorPassword, "sensors/removed/status", 5)
	narrowed := connectDelayedWill(t, hostPort(url), "delayed-narrowed", "keeper", keeperPassword, "sensors/narrowed/status", 5)
	kept := connectDelayedWill(t, hostPort(url), "delayed-kept", "keeper", keeperPassword, "sensors/kept/status", 7)
	removed.Close() // without DISCONNECT: the will is due in five seconds, time for the reload
	server.WaitFor(t, `DISCONNECTED\s+client=delayed-removed `)
	narrowed.Close()
	server.WaitFor(t, `DISCONNECTED\s+client=delayed-narrowed `)
	kept.Close() // due in seven
	server.WaitFor(t, `DISCONNECTED\s+client=delayed-kept `)

	keeperNarrowed := strings.Replace(revocationUsers("sensor"), "keeper:\n    password: \""+keeperPassword+"\"\n    publish: [sensors/#]",
		"keeper:\n    password: \""+keeperPassword+"\"\n    publish: [sensors/kept/#]", 1)
	if keeperNarrowed == revocationUsers("sensor") {
		t.Fatal("the keeper's rules were not narrowed")
	}
	writeFile(t, dir, "users.yaml", keeperNarrowed)
	server.Signal(t, syscall.SIGHUP)
	server.WaitFor(t, `RELOADED`)
	harness.Eventually(t, func() bool { return got.has("will of delayed-kept") }, "the kept delayed will")
	if got.has("will of delayed-removed") || got.has("will of delayed-narrowed") {
		t.Errorf("a delayed will the reload no longer allows was published: %v", got.payloads())
	}
	server.WaitFor(t, `WILL-WITHDRAWN\s+client=delayed-removed .*topic=sensors/removed/status reason="user no longer in the auth file"`)
	server.WaitFor(t, `WILL-WITHDRAWN\s+client=delayed-narrowed .*topic=sensors/narrowed/status reason="may no longer publish to the will topic"`)
	noDataRace(t, server)
}

// sseStream is the live page's event stream, read in the background.
type sseStream struct {
	mu    sync.Mutex
	data  bytes.Buffer
	ended chan struct{}
}

// openStream opens GET /events at base as user and reads it until it ends or the test does.
func openStream(t *testing.T, base, user, password string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/events", nil)
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("GET /events as %s: %s", user, resp.Status)
	}
	s := &sseStream{ended: make(chan struct{})}
	go func() {
		defer close(s.ended)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.data.Write(sc.Bytes())
			s.data.WriteByte('\n')
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *sseStream) has(text string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Contains(s.data.Bytes(), []byte(text))
}

func (s *sseStream) hasEnded() bool {
	select {
	case <-s.ended:
		return true
	default:
		return false
	}
}

// TestSecurityRevokedViewerStreamEnds: a live-page stream opened by a user that a reload removes
// ends at the reload, and shows nothing published after it; a stream of a user that stays goes
// on, and shows that message (the sentinel).
func TestSecurityRevokedViewerStreamEnds(t *testing.T) {
	dir := t.TempDir()
	auth := writeFile(t, dir, "users.yaml", revocationUsers())
	server, url := harness.StartServer(t, nil, "-auth", auth, "-http-listen", "127.0.0.1:0")
	m := regexp.MustCompile(`http=(http://\S+)`).FindStringSubmatch(server.WaitFor(t, `STARTED`))
	if m == nil {
		t.Fatal("no http= address on the started line")
	}
	removed := openStream(t, m[1], "viewer", otherPassword)
	kept := openStream(t, m[1], "watcher", watcherPassword)
	harness.Eventually(t, func() bool { return removed.has("event: snapshot") && kept.has("event: snapshot") },
		"both streams' first snapshot")

	writeFile(t, dir, "users.yaml", revocationUsers("viewer"))
	server.Signal(t, syscall.SIGHUP)
	server.WaitFor(t, `RELOADED`)
	sensor := mustConnect(t, pahoOpts(url, "stream-sensor").SetUsername("sensor").SetPassword(sensorPassword))
	const after = "published-after-the-reload"
	if err := waitToken(sensor.Publish("sensors/stream", 1, false, after)); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, func() bool { return kept.has(after) }, "the kept viewer's stream to show the message")
	harness.Eventually(t, removed.hasEnded, "the removed viewer's stream to end")
	if removed.has(after) {
		t.Error("the removed viewer's stream showed a message published after the reload")
	}
	if kept.hasEnded() {
		t.Error("the kept viewer's stream ended")
	}
	noDataRace(t, server)
}

// sendConnect sends a CONNECT on a connection dialled already and returns the CONNACK's code,
// or -1 if the connection ends first.
func sendConnect(c net.Conn, pk []byte) int {
	_ = c.SetDeadline(time.Now().Add(harness.Timeout))
	if _, err := c.Write(pk); err != nil {
		return -1
	}
	ack, err := rawmqtt.Read(c)
	if err != nil || len(ack) < 4 || ack[0] != 0x20 {
		return -1
	}
	return int(ack[3])
}

// alive tells whether the broker still answers c's PINGREQ (a session taken over is closed).
func alive(c net.Conn) bool {
	_ = c.SetDeadline(time.Now().Add(harness.Timeout))
	if _, err := c.Write(rawmqtt.Pingreq()); err != nil {
		return false
	}
	pk, err := rawmqtt.Read(c)
	return err == nil && len(pk) > 0 && pk[0] == 0xd0
}

// raceConnect dials both connections, then sends both CONNECTs at the same moment, and returns
// the connections and their CONNACK codes.
func raceConnect(t *testing.T, addr string, connects [2][]byte) ([2]net.Conn, [2]int) {
	t.Helper()
	var conns [2]net.Conn
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, harness.Timeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	var codes [2]int
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			codes[i] = sendConnect(conns[i], connects[i])
		}()
	}
	close(start)
	wg.Wait()
	return conns, codes
}

// TestSecurityNewClientIDRace: two users sending CONNECT with the same new client id at the
// same moment: exactly one gets the session and keeps it, the other is refused "not
// authorised", as another user's id is once its session exists. The same user twice still
// takes its own session over.
func TestSecurityNewClientIDRace(t *testing.T) {
	auth := writeFile(t, t.TempDir(), "users.yaml", revocationUsers())
	server, url := harness.StartServer(t, nil, "-auth", auth)
	addr := hostPort(url)
	deadline := time.Now().Add(time.Minute)
	const rounds = 100
	for round := range rounds {
		if time.Now().After(deadline) {
			t.Fatalf("only %d rounds in a minute", round)
		}
		id := fmt.Sprint("raced-", round)
		conns, codes := raceConnect(t, addr, [2][]byte{
			encodeConnect(connectOpts{version: 4, id: id, user: "alice", pass: alicePassword, persistent: true}),
			encodeConnect(connectOpts{version: 4, id: id, user: "bob", pass: bobPassword, persistent: true}),
		})
		winner := -1
		switch codes {
		case [2]int{0, 5}:
			winner = 0
		case [2]int{5, 0}:
			winner = 1
		default:
			t.Fatalf("round %d: CONNACK codes alice %d, bob %d; want one 0 (accepted) and one 5 (not authorised)", round, codes[0], codes[1])
		}
		if !alive(conns[winner]) {
			t.Fatalf("round %d: the accepted client's session was taken over", round)
		}
		conns[0].Close()
		conns[1].Close()
	}

	// The same user twice: both accepted, the later takes the session over (as MQTT says); the
	// earlier connection may be closed before its CONNACK is out (-1), but is never refused.
	for round := range 20 {
		id := fmt.Sprint("same-user-", round)
		connect := encodeConnect(connectOpts{version: 4, id: id, user: "alice", pass: alicePassword, persistent: true})
		conns, codes := raceConnect(t, addr, [2][]byte{connect, connect})
		if codes != [2]int{0, 0} && codes != [2]int{0, -1} && codes != [2]int{-1, 0} {
			t.Fatalf("same user, round %d: CONNACK codes %d and %d, want 0 and 0 (or one closed, -1)", round, codes[0], codes[1])
		}
		conns[0].Close()
		conns[1].Close()
	}
	noDataRace(t, server)
}

// TestSecurityRefusedConnectLeavesClientIDFree: a CONNECT that passes the access checks and is
// then refused (here past -max-sessions) leaves its new client id free for another user.
func TestSecurityRefusedConnectLeavesClientIDFree(t *testing.T) {
	auth := writeFile(t, t.TempDir(), "users.yaml", revocationUsers())
	server, url := harness.StartServer(t, nil, "-auth", auth, "-max-sessions", "1")
	addr := hostPort(url)
	holder, code := rawConnect(t, addr, connectOpts{version: 4, id: "the-one-session", user: "bob", pass: bobPassword})
	if code != 0 {
		t.Fatalf("CONNACK %#02x", code)
	}
	if _, code := rawConnect(t, addr, connectOpts{version: 4, id: "wanted", user: "alice", pass: alicePassword}); code != 3 {
		t.Fatalf("past -max-sessions: CONNACK %#02x, want 3 (server unavailable)", code)
	}
	holder.Close()
	server.WaitFor(t, `DISCONNECTED\s+client=the-one-session `)
	// The session count drops right after that line: try until it has.
	deadline := time.Now().Add(harness.Timeout)
	for try := 0; ; try++ {
		_, code := rawConnect(t, addr, connectOpts{version: 4, id: "wanted", user: "bob", pass: bobPassword})
		if code == 0 {
			break
		}
		if code != 3 || try == 1000 || time.Now().After(deadline) {
			t.Fatalf("another user taking the id of a refused CONNECT: CONNACK %#02x, want 0", code)
		}
	}
	noDataRace(t, server)
}
