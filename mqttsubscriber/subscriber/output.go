package subscriber

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"mqttdemo/shared/console"
)

// Message is one received message as printed.
type Message struct {
	Topic      string    `json:"topic"`
	Payload    string    `json:"payload"`
	QoS        byte      `json:"qos"`
	Retained   bool      `json:"retained"`
	Duplicate  bool      `json:"duplicate,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
	LatencyMS  *float64  `json:"latency_ms,omitempty"`
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
	con  *console.Console
	json *json.Encoder
	id   string
}

func newPrinter(cfg Config, con *console.Console, stdout io.Writer) *printer {
	p := &printer{con: con, id: cfg.ID}
	if cfg.JSON {
		p.json = json.NewEncoder(stdout)
		p.json.SetEscapeHTML(false)
	}
	return p
}

func (p *printer) print(m Message) error {
	lat, known := Latency(m.Payload, m.ReceivedAt)
	if p.json != nil {
		if known {
			ms := float64(lat.Microseconds()) / 1000
			m.LatencyMS = &ms
		}
		if err := p.json.Encode(m); err != nil {
			return fmt.Errorf("write JSON: %w", err)
		}
		return nil
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
	p.con.Linef(console.StyleMessage, "RECEIVED", "%s %s %s %s", p.id, m.Topic,
		p.con.Paint(console.StyleInfo, m.Payload), p.con.Paint(console.StyleDim, "("+details+")"))
	return nil
}
