package publisher

import (
	"fmt"
	"time"

	"mqttdemo/shared/console"
)

// Outcome is one message as -json prints it, once the broker has it (QoS 1/2), it is written
// to the network (QoS 0), or it is dropped.
type Outcome struct {
	N         int       `json:"n,omitempty"` // the message's number; absent for one resent from -store
	Topic     string    `json:"topic"`
	Payload   string    `json:"payload"`
	QoS       byte      `json:"qos"`
	Retained  bool      `json:"retained"`
	FromStore bool      `json:"from_store,omitempty"`
	Status    string    `json:"status"` // "acknowledged" (QoS 1/2), "sent" (QoS 0) or "dropped"
	Reason    string    `json:"reason,omitempty"`
	At        time.Time `json:"at"`
	AckMS     *float64  `json:"acknowledged_ms,omitempty"` // QoS 1/2: from PUBLISH to PUBACK/PUBCOMP
}

// Statuses of an Outcome.
const (
	StatusAcknowledged = "acknowledged"
	StatusSent         = "sent"
	StatusDropped      = "dropped"
)

func (p *publisher) outcome(m *inflight, status string, at time.Time) Outcome {
	return Outcome{N: m.n, Topic: m.topic, Payload: m.payload, QoS: m.qos, Retained: p.retained(m),
		FromStore: m.n == 0, Status: status, At: at}
}

// retained: a message resent from -store may have been published by a run without -retain.
func (p *publisher) retained(m *inflight) bool { return p.cfg.Retain && m.n != 0 }

// published reports a message the broker acknowledged (QoS 1/2) or that was written (QoS 0).
func (p *publisher) published(m *inflight, at time.Time) {
	d := at.Sub(m.start)
	if !p.out.JSON() {
		p.con.Linef(console.StyleMessage, "PUBLISHED", "%s %s %s %s", label(m), console.Printable(m.topic),
			p.con.Paint(console.StyleInfo, console.Printable(m.payload)), p.con.Paint(console.StyleDim, p.confirmation(m, d)))
		return
	}
	o := p.outcome(m, StatusSent, at)
	if m.qos > 0 {
		ms := float64(d.Microseconds()) / 1000
		o.Status, o.AckMS = StatusAcknowledged, &ms
	}
	p.object(o)
}

func (p *publisher) dropLine(m *inflight, why string) {
	if !p.out.JSON() {
		p.con.Linef(console.StyleWarn, "DROPPED", "%s %s: %s", label(m), console.Printable(m.topic), why)
		return
	}
	o := p.outcome(m, StatusDropped, time.Now())
	o.Reason = why
	p.object(o)
}

// object writes o; a failed write is said on the console (stderr with -json) and the run goes
// on: the summary and the exit status still count the message.
func (p *publisher) object(o Outcome) {
	if err := p.out.Object(o); err != nil {
		p.con.Line(console.StyleError, "ERROR", err.Error())
	}
}

func (p *publisher) confirmation(m *inflight, d time.Duration) string {
	retain := ""
	if p.retained(m) {
		retain = ", retained"
	}
	if m.qos == 0 {
		return fmt.Sprintf("(qos 0%s, sent)", retain)
	}
	from := ""
	if m.n == 0 {
		from = ", from the store"
	}
	return fmt.Sprintf("(qos %d%s%s, acknowledged in %s)", m.qos, retain, from, d.Round(10*time.Microsecond))
}
