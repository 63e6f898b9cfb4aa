package subscriber

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"mqttdemo/shared/console"
	"mqttdemo/shared/mqttclient"
)

func TestLatency(t *testing.T) {
	at := time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		payload string
		want    time.Duration
		ok      bool
	}{
		{"time:2026-11-25T18:59:59.750Z", 250 * time.Millisecond, true},
		{"time:2026-11-25T19:59:59.750+01:00", 250 * time.Millisecond, true},
		{"time:2026-11-25T18:59:59.999999Z", time.Microsecond, true},
		{"time:2026-11-25T18:59:59Z", time.Second, true},
		{"time:yesterday", 0, false},
		{"time:", 0, false},
		{"2026-11-25T18:59:59.750Z", 0, false},
		{"hello", 0, false},
		{"", 0, false},
	} {
		got, ok := Latency(c.payload, at)
		if got != c.want || ok != c.ok {
			t.Errorf("Latency(%q) = %v, %v; want %v, %v", c.payload, got, ok, c.want, c.ok)
		}
	}
}

// TestJSONShape pins the -json object: names, types, and latency_ms only when known.
func TestJSONShape(t *testing.T) {
	at := time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		msg  Message
		want string
	}{
		{Message{Topic: "a/b", Payload: "time:2026-11-25T18:59:59.9875Z", QoS: 1, ReceivedAt: at},
			`{"topic":"a/b","payload":"time:2026-11-25T18:59:59.9875Z","qos":1,"retained":false,"received_at":"2026-11-25T19:00:00Z","latency_ms":12.5}`},
		{Message{Topic: "t", Payload: `<"x">`, QoS: 2, Retained: true, Duplicate: true, ReceivedAt: at},
			`{"topic":"t","payload":"<\"x\">","qos":2,"retained":true,"duplicate":true,"received_at":"2026-11-25T19:00:00Z"}`},
		{Message{Topic: "t/bin", Payload: "bin\x00\xff\xfe", ReceivedAt: at}, // not UTF-8: the exact bytes in base64 too
			`{"topic":"t/bin","payload":"bin\u0000\ufffd\ufffd","qos":0,"retained":false,"payload_base64":"YmluAP/+","received_at":"2026-11-25T19:00:00Z"}`},
	} {
		var out bytes.Buffer
		p := newPrinter(Config{ClientConfig: &mqttclient.ClientConfig{}}, mqttclient.NewJSONOutput(nil, &out))
		if err := p.print(c.msg); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSuffix(out.String(), "\n"); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
		if !json.Valid(out.Bytes()) || strings.Count(out.String(), "\n") != 1 {
			t.Errorf("not one JSON object per line: %q", out.String())
		}
	}
}

func TestHumanLine(t *testing.T) {
	var out bytes.Buffer
	con := console.New(&out, false)
	p := newPrinter(Config{ClientConfig: &mqttclient.ClientConfig{ID: "sub-1"}}, &mqttclient.Output{Con: con})
	at := time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)
	if err := p.print(Message{Topic: "a/b", Payload: "time:2026-11-25T18:59:59.998Z", QoS: 1, Retained: true, Duplicate: true, ReceivedAt: at}); err != nil {
		t.Fatal(err)
	}
	want := "RECEIVED     sub-1 a/b time:2026-11-25T18:59:59.998Z (qos 1, retained, duplicate, latency 2ms)\n"
	if got := out.String(); !strings.HasSuffix(got, want) {
		t.Errorf("got %q, want it to end with %q", got, want)
	}
}

// TestHumanLineOfAHostilePublisher: a topic or payload cannot drive the reader's terminal or
// forge a line: each message stays one line, its control characters escaped.
func TestHumanLineOfAHostilePublisher(t *testing.T) {
	var out bytes.Buffer
	p := newPrinter(Config{ClientConfig: &mqttclient.ClientConfig{ID: "sub-1"}}, &mqttclient.Output{Con: console.New(&out, false)})
	m := Message{Topic: "t/\x1b[31mred", Payload: "A\x1b[2J\x1b]0;pwned\x07\nRECEIVED fake t/x forged", ReceivedAt: time.Now()}
	if err := p.print(m); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if strings.ContainsAny(got, "\x1b\x07") || strings.Count(got, "\n") != 1 {
		t.Errorf("a control character reached the terminal: %q", got)
	}
	if want := `t/\x1b[31mred A\x1b[2J\x1b]0;pwned\x07\nRECEIVED fake t/x forged (qos 0)`; !strings.Contains(got, want) {
		t.Errorf("got %q, want it to show %q", got, want)
	}
}
