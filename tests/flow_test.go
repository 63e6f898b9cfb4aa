package tests

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"mqttdemo/mqttserver/rawmqtt"
	"mqttdemo/tests/harness"
)

// TestFaultStalledSubscriber: a QoS 1 or 2 subscriber that stops reading beside a healthy one. The
// healthy one gets every message in about the time it takes alone, and the stalled one is
// disconnected as a slow consumer. Before the connection layer of slowclients.go, the healthy
// subscriber got 184 of 2,000 messages in 60 s: mochi's write to the stalled client blocked
// holding the client's lock, and the publisher waited for that lock to number its next copy.
// Mosquitto, run beside for the record, delivers them in about half a second.
//
// The broker runs at floodBudget and finds the stalled subscriber by -slow-client-timeout (5 s):
// at the default -max-queued-bytes (1 MiB) a loaded machine that held the test's own healthy
// subscriber back for a moment got it disconnected as a slow consumer, its clean session's
// copies dropped (TestFaultPausedSubscriber).
func TestFaultStalledSubscriber(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			server, url := harness.StartServer(t, nil, floodBudget, "-slow-client-timeout=5s")
			alone := mustFlood(t, url, flood{qos: qos, name: "alone"})
			stalled := mustFlood(t, url, flood{qos: qos, name: "beside", stall: true})
			t.Logf("mqttserver: 2000 QoS %d messages of 16 KiB to the healthy subscriber in %s alone, %s beside a stalled one",
				qos, alone.Round(time.Millisecond), stalled.Round(time.Millisecond))
			// A loaded machine varies a lot: the bound is loose, the stall it guards against is not
			// (no end within harness.Timeout).
			if limit := 4*alone + 3*time.Second; stalled > limit {
				t.Errorf("beside a stalled subscriber the healthy one took %s, want under %s (4× alone + 3 s)", stalled, limit)
			}
			server.WaitFor(t, `slow consumer disconnected.*client=stalled-beside`)

			if qos != 1 {
				return // Mosquitto drops QoS 2 copies past its queue of 1000 even to the healthy subscriber
			}
			_, mosquitto := harness.StartMosquitto(t)
			for _, stall := range []bool{false, true} {
				r := floodPast(t, mosquitto, flood{qos: qos, name: fmt.Sprint(stall), stall: stall}, 10*time.Second)
				t.Logf("Mosquitto, stalled subscriber beside: %v: %d of 2000 in %s", stall, r.got, r.took.Round(time.Millisecond))
			}
		})
	}
}

// floodBudget is the -max-queued-bytes of the flood tests: more than a whole flood, so that the
// healthy subscriber may fall behind by all of it and is never taken for a slow consumer.
const floodBudget = "-max-queued-bytes=67108864"

// TestFaultPausedSubscriber: a healthy QoS 1 subscriber that reads nothing while the 2,000
// messages of 16 KiB are published, then reads on, as a loaded machine may hold the test's own
// clients back. At the default -max-queued-bytes (1 MiB) the broker disconnects it as a slow
// consumer and its clean session's copies are dropped (docs/reliability.md, "a burst of QoS 1/2
// larger than -max-queued-bytes ends a subscriber that reads, but slowly"): this made
// TestFaultStalledSubscriber fail now and then (287 of 2,000) before it ran at floodBudget. At
// floodBudget it gets them all.
func TestFaultPausedSubscriber(t *testing.T) {
	server, url := harness.StartServer(t, nil)
	if r := floodPast(t, url, flood{qos: 1, name: "paused", pause: true}, harness.Timeout); r.got == 2000 || r.lost == nil {
		t.Errorf("at the default -max-queued-bytes the paused subscriber got %d of 2000 messages (connection lost: %v), "+
			"want it disconnected: if the broker now paces what it sends, update docs/reliability.md", r.got, r.lost)
	}
	server.WaitFor(t, `slow consumer disconnected\s+client=healthy-paused reason="-max-queued-bytes unsent"`)

	_, url = harness.StartServer(t, nil, floodBudget)
	mustFlood(t, url, flood{qos: 1, name: "paused-within", pause: true})
}

// mustFlood is floodPast that fails the test unless every message arrives within harness.Timeout.
func mustFlood(t *testing.T, url string, f flood) time.Duration {
	t.Helper()
	r := floodPast(t, url, f, harness.Timeout)
	if r.got != 2000 {
		why := "in " + r.took.String()
		if r.lost != nil { // the broker's log, in the test's output, says why
			why = fmt.Sprintf("before its connection was lost (%v)", r.lost)
		}
		t.Fatalf("the healthy subscriber got %d of 2000 messages %s", r.got, why)
	}
	return r.took
}

// flood is a run of floodPast.
type flood struct {
	qos   byte
	name  string
	stall bool // a subscriber that never reads beside the healthy one
	pause bool // the healthy one reads nothing until the publisher is done
}

// flooded is what floodPast saw: how many messages the healthy subscriber got, in how long, and
// the error its connection was lost with (nil: not lost).
type flooded struct {
	took time.Duration
	got  int
	lost error
}

// floodPast publishes 2,000 messages of 16 KiB at f.qos to flood/<f.name> with a healthy
// subscriber and returns how long it took to get them all, or how many it got by the timeout or
// the loss of its connection.
func floodPast(t *testing.T, url string, f flood, timeout time.Duration) flooded {
	t.Helper()
	const count, size = 2000, 16 << 10
	topic := "flood/" + f.name
	if f.stall {
		dialStalled(t, hostPort(url), "stalled-"+f.name, topic, f.qos)
	}
	var healthy inbox
	lost := make(chan error, 1)
	published := make(chan struct{})
	handler := healthy.handler
	if f.pause {
		handler = func(c paho.Client, m paho.Message) {
			select { // paho reads nothing more meanwhile (its handlers run in order)
			case <-published:
			case <-time.After(harness.Timeout):
			}
			healthy.handler(c, m)
		}
	}
	sub := mustConnect(t, pahoOpts(url, "healthy-"+f.name).SetDefaultPublishHandler(handler).
		SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err }))
	if err := waitToken(sub.Subscribe(topic, f.qos, nil)); err != nil {
		t.Fatal(err)
	}
	pub := mustConnect(t, pahoOpts(url, "flooder-"+f.name))
	pad := strings.Repeat("x", size-7)
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		err := publishAll(pub, topic, f.qos, count, func(i int) string { return fmt.Sprintf("%06d %s", i, pad) })
		close(published)
		done <- err
	}()
	deadline := time.Now().Add(timeout)
	r := flooded{}
	for healthy.len() < count && time.Now().Before(deadline) && r.lost == nil {
		select {
		case r.lost = <-lost:
		case <-time.After(5 * time.Millisecond): // polling interval, not synchronisation
		}
	}
	r.took, r.got = time.Since(start), healthy.len()
	if r.got < count {
		return r // the publisher may be stuck: its client ends with the test
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(timeout):
		t.Fatal("the publisher did not finish")
	}
	return r
}

// dialStalled connects a client with a 4 KiB receive buffer that subscribes to filter at qos
// and then reads nothing (keep-alive 0: it is never timed out for silence).
func dialStalled(tb testing.TB, addr, id, filter string, qos byte) {
	tb.Helper()
	d := net.Dialer{Timeout: harness.Timeout, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = setRecvBuffer(fd, 4096) })
		if err == nil {
			err = serr
		}
		return err
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	rc := &rawConn{c}
	rc.send(tb, rawmqtt.Connect{ID: id, Clean: true}.Encode())
	if ack := rc.read(tb); !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
		tb.Fatalf("CONNACK for %s: % x", id, ack)
	}
	rc.send(tb, rawmqtt.Subscribe(1, filter, qos))
	if ack := rc.read(tb); !bytes.Equal(ack, []byte{0x90, 3, 0, 1, qos}) {
		tb.Fatalf("SUBACK for %s: % x", filter, ack)
	}
}

// TestLoadOfflineSessions: 100 persistent sessions subscribed to amp/# go offline and 3,000
// QoS 1 messages of 1 KB are published. With the default limits each session keeps what
// -max-queued-bytes allows and the rest is dropped, counted in $SYS and logged; the broker
// grows by less than 256 MB (1.4 GB before the limits) and still serves new clients.
func TestLoadOfflineSessions(t *testing.T) {
	server, url := harness.StartServer(t, nil)
	grew := offlineSessions(t, url, server.Cmd.Process.Pid)
	t.Logf("mqttserver grew by %d MB", grew>>20)
	limit := int64(256 << 20)
	if raceDetector {
		// The race detector's own memory grows with the heap, which -gc-percent lets grow to its
		// soft limit: 600 MB measured. CI also runs this without it, against 256 MB.
		limit = 768 << 20
	}
	if grew > limit {
		t.Errorf("mqttserver grew by %d MB, want under %d MB", grew>>20, limit>>20)
	}
	server.WaitFor(t, `DROPPED\s+client=amp-\d+ topic=amp/x reason="session queue full \(-max-queued-bytes\)"`)

	// Every drop is counted: the lines logged one by one and the counts of the summaries add up
	// to $SYS/broker/messages/dropped.
	var sys inbox
	watcher := mustConnect(t, pahoOpts(url, "sys-watcher").SetDefaultPublishHandler(sys.handler))
	if err := waitToken(watcher.Subscribe("$SYS/broker/messages/dropped", 0, nil)); err != nil {
		t.Fatal(err)
	}
	logged := func() int { return droppedLogged(server.Out, "amp-") }
	harness.Eventually(t, func() bool { return logged() > 0 && logged() == sys.lastInt() },
		"the drops logged (%d) to equal $SYS/broker/messages/dropped (%d)", logged(), sys.lastInt())
	t.Logf("mqttserver dropped %d of %d copies, each counted in $SYS and logged", logged(), 100*3000)

	mosquitto, murl := harness.StartMosquitto(t)
	t.Logf("Mosquitto grew by %d MB", offlineSessions(t, murl, mosquitto.Cmd.Process.Pid)>>20)
}

// offlineSessions makes 100 offline sessions on amp/#, publishes 3,000 QoS 1 messages of 1 KB,
// checks that a new client is still served, and returns how much the broker's RSS grew.
func offlineSessions(t *testing.T, url string, pid int) int64 {
	t.Helper()
	const sessions, count, size = 100, 3000, 1 << 10
	for i := range sessions {
		c := paho.NewClient(pahoOpts(url, fmt.Sprintf("amp-%03d", i)).SetCleanSession(false))
		if err := waitToken(c.Connect()); err != nil {
			t.Fatal(err)
		}
		if err := waitToken(c.Subscribe("amp/#", 1, nil)); err != nil {
			t.Fatal(err)
		}
		c.Disconnect(50)
	}
	return publishedGrowth(t, url, pid, "amp", count, size)
}

// publishedGrowth publishes count QoS 1 messages of size bytes to prefix/x, returns the
// broker's RSS growth (pid), and checks that a new client is still served.
func publishedGrowth(t *testing.T, url string, pid int, prefix string, count, size int) int64 {
	t.Helper()
	before := vmRSS(t, pid)
	pub := mustConnect(t, pahoOpts(url, prefix+"-publisher"))
	pad := strings.Repeat("x", size-7)
	if err := publishAll(pub, prefix+"/x", 1, count, func(i int) string { return fmt.Sprintf("%06d %s", i, pad) }); err != nil {
		t.Fatal(err)
	}
	grew := vmRSS(t, pid) - before
	var got inbox
	fresh := mustConnect(t, pahoOpts(url, "fresh").SetDefaultPublishHandler(got.handler))
	if err := waitToken(fresh.Subscribe("fresh/t", 1, nil)); err != nil {
		t.Fatal(err)
	}
	if err := waitToken(pub.Publish("fresh/t", 1, false, "hello")); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, func() bool { return got.len() == 1 }, "a new client to get its message")
	return grew
}

// vmRSS is the resident memory of process pid in bytes.
func vmRSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				tb.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	tb.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// publishAll publishes count messages, payload(i) each, waiting for the acknowledgements every
// 64 messages, as a publisher with a bounded in-flight window does.
func publishAll(pub paho.Client, topic string, qos byte, count int, payload func(int) string) error {
	window := make([]paho.Token, 0, 64)
	for i := range count {
		window = append(window, pub.Publish(topic, qos, false, payload(i)))
		if len(window) == cap(window) || i == count-1 {
			for _, tok := range window {
				if err := waitToken(tok); err != nil {
					return fmt.Errorf("publish %d: %w", i, err)
				}
			}
			window = window[:0]
		}
	}
	return nil
}

// droppedLogged counts the messages the broker logged as dropped for clients whose id starts
// with prefix: the first ones one line each, then a count a second (summary lines of any client).
func droppedLogged(out *harness.Output, prefix string) int {
	n := len(out.Lines(re(`DROPPED\s+client=` + regexp.QuoteMeta(prefix))))
	for _, l := range out.Lines(re(`DROPPED\s+count=\d+`)) {
		c, _ := strconv.Atoi(strings.Fields(l[strings.Index(l, "count=")+len("count="):])[0])
		n += c
	}
	return n
}
