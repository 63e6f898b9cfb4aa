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

// mqttjsEvent is one line a probe script prints.
type mqttjsEvent struct {
	Event             string
	MaximumPacketSize int
	TopicAliasMaximum int
	ReasonCode        int
	Error             *string
}

// TestMQTTJS: what an MQTT 5 client sees of the limits (issue 27 items 4 and 6, issue 21 item 6),
// on ours and on Mosquitto 2.0.11. mqtt.js refuses a filter such as x/y+ itself, so that case
// is tested with raw packets (mqttserver/broker TestProtocolErrorsDisconnect).
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
		check    func(events []mqttjsEvent) string // what is wrong, or ""
		known    map[string]string                 // broker and transport → why it misses the specification, for now
	}{
		{"connack", func(ev []mqttjsEvent) string {
			if a := first(ev, "connack"); a == nil || a.MaximumPacketSize != mqttjsLimit || a.TopicAliasMaximum != 10 {
				return fmt.Sprintf("CONNACK %+v, want maximumPacketSize %d and topicAliasMaximum 10", a, mqttjsLimit)
			}
			return ""
		}, nil},
		{"toolarge", func(ev []mqttjsEvent) string {
			if d := first(ev, "disconnect"); d == nil || d.ReasonCode != 0x95 {
				return fmt.Sprintf("got %+v, want DISCONNECT 0x95 (packet too large)", d)
			}
			return ""
		}, map[string]string{
			"mosquitto ws": "Mosquitto 2.0.11 applies no max_packet_size on its WebSocket listener " +
				"and acknowledges the PUBLISH; MQTT 5 §3.2.2.3.6 wants DISCONNECT 0x95",
			"ours ws": "mqtt.js writes the PUBLISH in several WebSocket writes; the broker closes after the header, " +
				"and mqtt.js ends on its write error (EPIPE/ECONNRESET) before it reads the DISCONNECT: " +
				"to mend, read and discard what the client still sends for a moment before closing (a lingering close)",
		}},
	} {
		for _, name := range []string{"ours tcp", "ours ws", "mosquitto tcp", "mosquitto ws"} {
			t.Run(c.scenario+"/"+name, func(t *testing.T) {
				t.Parallel()
				events := runMQTTJS(t, dir, "probe.js", urls[name], c.scenario)
				wrong := c.check(events)
				why, allowed := c.known[name]
				switch {
				case wrong != "" && !allowed:
					t.Errorf("%s: %s", name, wrong)
				case wrong == "" && allowed && strings.HasPrefix(name, "mosquitto"): // ours over WebSocket is a race
					t.Errorf("%s now behaves as the specification says: remove it from known (%s)", name, why)
				}
			})
		}
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

// runMQTTJS runs a probe script to its end (it stops itself within 5 s) and returns its events.
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
