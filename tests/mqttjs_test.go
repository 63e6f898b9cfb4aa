package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"mqttdemo/tests/harness"
)

// The MQTT 5 client nobody here wrote: mqtt.js, pinned in mqttjs/package-lock.json, run by tiny
// node scripts in mqttjs/ against the real mqttserver binary and a Mosquitto started here, over
// TCP and WebSocket. Install it with `npm ci --prefix tests/mqttjs`; MQTTJS=off leaves these
// tests out (skipped, said so), e.g. on a machine without node.

// mqttjsLimit is -max-packet-size / max_packet_size of both brokers in these tests.
const mqttjsLimit = 1024

// mqttjsEvent is one line a probe script prints; "done" and "timeout" carry a scenario's result.
type mqttjsEvent struct {
	Event             string
	MaximumPacketSize int
	TopicAliasMaximum int
	ReasonCode        int
	Error             *string
	Received          int             // messages the subscriber got
	Order             []int           // their payloads, numbered by the publisher (-1: the too-large one)
	Dups              int             // how many came with DUP
	MaxInflight       int             // most QoS 1 and 2 messages unacknowledged at once, read off the wire
	Up                bool            // the subscriber's connection was open at the end
	Expiries          map[string]*int // Message Expiry Interval by payload; nil: none
}

// mqttjsSlip is a known miss of the specification, for now: why, and whether it shows only
// on some runs (a race), so that a run without it does not mean it is mended.
type mqttjsSlip struct {
	why       string
	sometimes bool
}

// mosquittoReceiveMax: Mosquitto 2.0.11 sends more than the client's Receive Maximum when messages
// come in a burst or at a resume (eclipse-mosquitto/mosquitto#2301: the quota is not kept in
// db__message_delete_outgoing); over WebSocket it writes slower and the client's acknowledgements
// often keep up.
var mosquittoReceiveMax = map[string]mqttjsSlip{
	"mosquitto tcp": {"Mosquitto 2.0.11 exceeds the client's Receive Maximum (mosquitto#2301); MQTT-4.9.0-2", true},
	"mosquitto ws":  {"Mosquitto 2.0.11 exceeds the client's Receive Maximum (mosquitto#2301); MQTT-4.9.0-2", true},
}

// TestMQTTJS: what an MQTT 5 client sees of flow control, limits, expiry and validation (issue
// 27 items 1-7, issue 21 item 6), on ours and on Mosquitto 2.0.11, over TCP and WebSocket. mqtt.js
// refuses some malformed input itself, so those cases are tested with raw packets (mqttserver/broker
// TestProtocolErrorsDisconnect): a filter such as x/y+, and a QoS 1 or 2 PUBLISH with an unknown
// topic alias and an empty topic (mqtt.js sends it at QoS 0 only: aliasunknown).
func TestMQTTJS(t *testing.T) {
	dir := mqttjsDir(t)
	oursWS := harness.FreePort(t)
	_, ours := harness.StartServer(t, nil, "-max-packet-size", fmt.Sprint(mqttjsLimit), "-ws-listen", fmt.Sprintf("127.0.0.1:%d", oursWS))
	mosqWS := harness.FreePort(t)
	_, mosq := harness.StartMosquitto(t, fmt.Sprintf("max_packet_size %d", mqttjsLimit),
		fmt.Sprintf("listener %d 127.0.0.1", mosqWS), "protocol websockets")
	harness.WaitListening(t, mosqWS)
	urls := map[string]string{
		"ours tcp": strings.Replace(ours, "tcp://", "mqtt://", 1), "ours ws": fmt.Sprintf("ws://127.0.0.1:%d/mqtt", oursWS),
		"mosquitto tcp": strings.Replace(mosq, "tcp://", "mqtt://", 1), "mosquitto ws": fmt.Sprintf("ws://127.0.0.1:%d/mqtt", mosqWS),
	}
	for _, c := range []struct {
		scenario string
		script   string // run as: node script URL NAME args...
		args     []string
		check    func(events []mqttjsEvent) string // what is wrong, or ""
		known    map[string]mqttjsSlip             // broker and transport → why it misses the specification, for now
	}{
		{"connack", "probe.js", []string{"connack"}, func(ev []mqttjsEvent) string {
			if a := first(ev, "connack"); a == nil || a.MaximumPacketSize != mqttjsLimit || a.TopicAliasMaximum != 10 {
				return fmt.Sprintf("CONNACK %+v, want maximumPacketSize %d and topicAliasMaximum 10", a, mqttjsLimit)
			}
			return ""
		}, nil},
		{"toolarge", "probe.js", []string{"toolarge"}, func(ev []mqttjsEvent) string {
			if d := first(ev, "disconnect"); d == nil || d.ReasonCode != 0x95 {
				return fmt.Sprintf("got %+v, want DISCONNECT 0x95 (packet too large)", d)
			}
			return ""
		}, map[string]mqttjsSlip{
			"mosquitto ws": {"Mosquitto 2.0.11 applies no max_packet_size on its WebSocket listener " +
				"and acknowledges the PUBLISH; MQTT 5 §3.2.2.3.6 wants DISCONNECT 0x95", false},
			"ours ws": {"mqtt.js writes the PUBLISH in several WebSocket writes; the broker closes after the header, " +
				"and mqtt.js ends on its write error (EPIPE/ECONNRESET) before it reads the DISCONNECT: " +
				"to mend, read and discard what the client still sends for a moment before closing (a lingering close)", true},
			"mosquitto tcp": {"the same race as ours over WebSocket, seen on Mosquitto over TCP: " +
				"mqtt.js ends on ECONNRESET before it reads the DISCONNECT", true},
		}},
		// item 1: 100 QoS 1 messages in a burst to a subscriber with Receive Maximum 5
		{"receive maximum", "flow.js", nil, delivered(100, 5), mosquittoReceiveMax},
		// item 2: a resumed session's queue within Receive Maximum 5, at QoS 1 and 2
		{"resume qos 1", "resume.js", []string{"1", "30", "5", "0"}, delivered(30, 5), mosquittoReceiveMax},
		{"resume qos 2", "resume.js", []string{"2", "20", "5", "0"}, delivered(20, 5), mosquittoReceiveMax},
		// item 3: a queued message larger than the client's Maximum Packet Size (512) is discarded
		{"resume too large", "resume.js", []string{"1", "5", "0", "512"}, delivered(5, 0), nil},
		// item 5: no expiry the publisher did not set; 60 s less the time waited
		{"expiry", "expiry.js", nil, func(ev []mqttjsEvent) string {
			d := first(ev, "done")
			if d == nil {
				return fmt.Sprintf("not both messages arrived: %+v", ev)
			}
			if e := d.Expiries["none"]; e != nil {
				return fmt.Sprintf("a message without expiry came with messageExpiryInterval %d", *e)
			}
			if e := d.Expiries["sixty"]; e == nil || *e < 1 || *e > 60 {
				return fmt.Sprintf("a message with 60 s came with messageExpiryInterval %v, want 1-60", e)
			}
			return ""
		}, nil},
		// item 6: protocol errors, answered by DISCONNECT 0x82
		{"shared no local", "probe.js", []string{"sharednolocal"}, disconnectedWith(0x82), map[string]mqttjsSlip{
			"mosquitto tcp": {"Mosquitto 2.0.11 grants a shared subscription with No Local; MQTT-3.8.3-4 makes it a protocol error", false},
			"mosquitto ws":  {"Mosquitto 2.0.11 grants a shared subscription with No Local; MQTT-3.8.3-4 makes it a protocol error", false},
		}},
		{"unknown alias", "probe.js", []string{"aliasunknown"}, disconnectedWith(0x82), nil},
		// item 7: the first delivery of a queued message has no DUP
		{"queued no dup", "resume.js", []string{"2", "3", "0", "0"}, delivered(3, 0), nil},
	} {
		for _, name := range []string{"ours tcp", "ours ws", "mosquitto tcp", "mosquitto ws"} {
			t.Run(c.scenario+"/"+name, func(t *testing.T) {
				t.Parallel()
				// the brokers are shared: client ids and topics are the subtest's own
				id := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
				events := runMQTTJS(t, dir, c.script, append([]string{urls[name], id}, c.args...)...)
				wrong := c.check(events)
				slip, allowed := c.known[name]
				switch {
				case wrong != "" && !allowed:
					t.Errorf("%s: %s", name, wrong)
				case wrong != "":
					t.Logf("known slip: %s (%s)", wrong, slip.why)
				case allowed && !slip.sometimes:
					t.Errorf("%s now behaves as the specification says: remove it from known (%s)", name, slip.why)
				}
			})
		}
	}
}

// delivered checks a subscriber's result: all n messages, in order, none with DUP, at most
// receiveMax (0: any) unacknowledged at once, no error, still connected.
func delivered(n, receiveMax int) func([]mqttjsEvent) string {
	return func(ev []mqttjsEvent) string {
		if e := first(ev, "error"); e != nil {
			return fmt.Sprintf("mqtt.js: %s", *e.Error)
		}
		d := first(ev, "done")
		if d == nil {
			d = first(ev, "timeout")
		}
		if d == nil || d.Received != n {
			return fmt.Sprintf("not all %d messages arrived: %+v", n, d)
		}
		for i, m := range d.Order {
			if m != i {
				return fmt.Sprintf("out of order: %v", d.Order)
			}
		}
		switch {
		case d.Dups > 0:
			return fmt.Sprintf("%d messages came with DUP on their first delivery", d.Dups)
		case receiveMax > 0 && d.MaxInflight > receiveMax:
			return fmt.Sprintf("%d messages unacknowledged at once; Receive Maximum is %d", d.MaxInflight, receiveMax)
		case !d.Up:
			return "the connection did not stay up"
		}
		return ""
	}
}

// disconnectedWith checks that the broker ended the connection with DISCONNECT code.
func disconnectedWith(code int) func([]mqttjsEvent) string {
	return func(ev []mqttjsEvent) string {
		if d := first(ev, "disconnect"); d == nil || d.ReasonCode != code {
			return fmt.Sprintf("got %+v, want DISCONNECT %#x", ev, code)
		}
		return ""
	}
}

// mqttjsDir is the folder of the probe scripts, with mqtt.js installed; without it the test
// fails with the command that installs it, unless MQTTJS=off.
func mqttjsDir(t *testing.T) string {
	t.Helper()
	if os.Getenv("MQTTJS") == "off" {
		t.Skip("MQTTJS=off: the mqtt.js tests are not wanted here")
	}
	dir, err := filepath.Abs("mqttjs")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed: install Node.js 20 (or set MQTTJS=off to leave the mqtt.js tests out)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "mqtt", "package.json")); err != nil {
		t.Fatalf("mqtt.js is not installed: run `npm ci --prefix tests/mqttjs` (or set MQTTJS=off to leave the mqtt.js tests out): %v", err)
	}
	return dir
}

// runMQTTJS runs a probe script to its end (it stops itself within 8 s) and returns its events.
func runMQTTJS(t *testing.T, dir, script string, args ...string) []mqttjsEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), harness.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s %s: %v\n%s", script, strings.Join(args, " "), err, out)
	}
	var events []mqttjsEvent
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var e mqttjsEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s printed %q: %v", script, sc.Text(), err)
		}
		events = append(events, e)
	}
	t.Logf("%s %s: %s", script, strings.Join(args, " "), out)
	return events
}

// first is the first event named name, or nil.
func first(events []mqttjsEvent, name string) *mqttjsEvent {
	for i := range events {
		if events[i].Event == name {
			return &events[i]
		}
	}
	return nil
}
