package subscriber

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"mqttdemo/shared/console"
	"mqttdemo/shared/mqttclient"
)

// Message is one received message as printed.
type Message struct {
	Topic     string `json:"topic"`
	Payload   string `json:"payload"`
	QoS       byte   `json:"qos"`
	Retained  bool   `json:"retained"`
	Duplicate bool   `json:"duplicate,omitempty"`
	// PayloadBase64 is the exact payload when it is not UTF-8, which a JSON string cannot hold
	// (payload then shows each such byte as U+FFFD).
	PayloadBase64 string    `json:"payload_base64,omitempty"`
	ReceivedAt    time.Time `json:"received_at"`
	LatencyMS     *float64  `json:"latency_ms,omitempty"`
}

// Latency is the time since the stamp of a "time:<RFC 3339>" payload, the publisher's default.
func Latency(payload string, at time.Time) (time.Duration, bool) {
	stamp, ok := strings.CutPrefix(payload, "time:")
	if !ok {
		return 0, false
	}
	sent, err := time.Parse(time.RFC3339Nano, stamp)
	if err != nil {
		return 0, false
	}
	return at.Sub(sent), true
}

// printer writes received messages as coloured lines or JSON objects.
type printer struct {
	out *mqttclient.Output
	id  string
}

func newPrinter(cfg Config, out *mqttclient.Output) *printer {
	return &printer{out: out, id: cfg.ID}
}

func (p *printer) print(m Message) error {
	lat, known := Latency(m.Payload, m.ReceivedAt)
	if p.out.JSON() {
		if !utf8.ValidString(m.Payload) {
			m.PayloadBase64 = base64.StdEncoding.EncodeToString([]byte(m.Payload))
		}
		if known {
			ms := float64(lat.Microseconds()) / 1000
			m.LatencyMS = &ms
		}
		return p.out.Object(m)
	}
	details := fmt.Sprintf("qos %d", m.QoS)
	if m.Retained {
		details += ", retained"
	}
	if m.Duplicate {
		details += ", duplicate"
	}
	if known {
		details += ", latency " + lat.Round(10*time.Microsecond).String()
	}
	con := p.out.Con
	con.Linef(console.StyleMessage, "RECEIVED", "%s %s %s %s", p.id, console.Printable(m.Topic),
		con.Paint(console.StyleInfo, console.Printable(m.Payload)), con.Paint(console.StyleDim, "("+details+")"))
	return nil
}
