package subscriber

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"mqttdemo/shared/console"
	"mqttdemo/shared/mqttclient"
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

// printer writes received messages, and with -debug the packets, as coloured lines or JSON
// objects.
type printer struct {
	con     *console.Console
	json    *json.Encoder // messages, on the main goroutine
	packets *json.Encoder // packets, on paho's network goroutines
	trace   func(mqttclient.Packet)
	id      string
}

func newPrinter(cfg Config, con *console.Console, stdout io.Writer) *printer {
	p := &printer{con: con, id: cfg.ID, trace: mqttclient.ConsoleTrace(con)}
	if cfg.JSON {
		// Each Encode is one Write: the lock keeps a message and a packet from mixing.
		w := &lockedWriter{w: stdout}
		p.json, p.packets = json.NewEncoder(w), json.NewEncoder(w)
		p.json.SetEscapeHTML(false)
		p.packets.SetEscapeHTML(false)
	}
	return p
}

// packet reports one MQTT packet (-debug): a console line, or with -json an object on stdout
// among the messages, told apart by its "packet" field.
func (p *printer) packet(pk mqttclient.Packet) {
	if p.packets == nil {
		p.trace(pk)
		return
	}
	if err := p.packets.Encode(pk); err != nil {
		p.con.Line(console.StyleError, "ERROR", "write JSON: "+err.Error())
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
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
