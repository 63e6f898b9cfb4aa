// Package publisher is the mqttpublisher program: it publishes time:<now> (or any message) to an
// MQTT topic every interval and reports each message the broker confirms.
package publisher

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"mqttdemo/shared/console"
	"mqttdemo/shared/mqttclient"
)

// Window is how many QoS 1/2 messages may wait for their acknowledgement at once. Pipelining
// keeps -interval 0 from paying a round trip per message (about twice as fast on loopback). The
// bound stays under the brokers' in-flight limits: Mosquitto accepts 20 unreleased QoS 2
// messages from an MQTT 3.1.1 client (max_inflight_messages) and drops the connection at the
// 21st, which after a reconnect would repeat for ever.
const Window = mqttclient.MaxInFlight

// DrainTimeout bounds the wait for outstanding acknowledgements after an interrupt.
const DrainTimeout = 2 * time.Second

// MaxDrops is how many times in a row the broker may close a working connection while a message
// waits for its acknowledgement before the publisher gives up: a broker that refuses a topic to
// an MQTT 3.1.1 client can only say so by disconnecting it (mochi does), and paho would resend
// the message for ever.
const MaxDrops = 3

// ErrIncomplete ends the program when messages were dropped or left unacknowledged.
var ErrIncomplete = errors.New("not every message was delivered")

// Run is the whole mqttpublisher program.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := Load(args, getenv, stderr)
	if err != nil {
		return err
	}
	out := mqttclient.NewOutput(cfg.ClientConfig, stdout, stderr, getenv)
	con := out.Con
	opts, err := cfg.Options()
	if err != nil {
		return err
	}
	// Ordered: after a reconnect paho resends what is stored in the store's order, and MQTT
	// promises the order of a publisher's messages (the plain memory store is a map).
	store := mqttclient.NewStore(mqtt.NewOrderedMemoryStore())
	if cfg.Store != "" {
		if store, err = mqttclient.NewFileStore(cfg.Store); err != nil {
			return err
		}
	}
	opts.SetStore(store)
	if cfg.Debug {
		mqttclient.Trace(opts, out.Packet)
	}
	mqttclient.KeepReleases(opts, store)
	p := &publisher{cfg: cfg, con: con, out: out, store: store}
	// Messages an earlier run left in -store: paho resends them on connect; wait for them too.
	for _, m := range store.Outgoing() {
		p.resume(m)
	}
	ready := mqttclient.Announce(opts, con, store, nil)
	announceLost := opts.OnConnectionLost
	opts.SetConnectionLostHandler(func(c mqtt.Client, err error) {
		p.drops.Add(1)
		announceLost(c, err)
	})
	client, err := mqttclient.Connect(ctx, opts, con)
	if errors.Is(err, context.Canceled) {
		return nil // interrupted before the broker came up
	} else if err != nil {
		return err
	}
	mqttclient.AwaitReady(ctx, ready)
	p.client = client
	var readErr error
	err = p.run(ctx, messages(ctx, cfg, stdin, &readErr))
	if err == nil && readErr != nil {
		err = readErr // what was read is published; a line lost is an error, not the end
	}
	mqttclient.Disconnect(client)
	p.summary()
	incomplete := p.dropped > 0 || p.unconfirmed() > 0
	if errors.Is(err, context.Canceled) {
		// Ctrl-C or SIGTERM: the user ended it, a normal end (exit 0); the summary has the count.
		err = nil
		if incomplete && cfg.Store != "" && p.unconfirmed() > 0 {
			con.Linef(console.StyleWarn, "KEPT", "%d unacknowledged in %s: the next run with the same -id and -clean=false resends them",
				p.unconfirmed(), cfg.Store)
		}
	} else if err == nil && incomplete {
		// It ran to the end (-count, end of -stdin) and could not deliver everything: a failure.
		err = fmt.Errorf("%w: %d dropped, %d unacknowledged", ErrIncomplete, p.dropped, p.unconfirmed())
		if p.unconfirmed() > 0 && cfg.Store != "" {
			err = fmt.Errorf("%w (kept in %s: the next run with the same -id and -clean=false resends them)", err, cfg.Store)
		}
	}
	return err
}

// messages yields the payloads to publish: one per line of stdin with -stdin, otherwise the
// rendered template once per interval, up to -count.
// A read error of stdin is left in *readErr before the channel closes.
func messages(ctx context.Context, cfg Config, stdin io.Reader, readErr *error) <-chan string {
	out := make(chan string)
	go func() {
		defer close(out)
		send := func(s string) bool {
			select {
			case out <- s:
				return true
			case <-ctx.Done():
				return false
			}
		}
		if cfg.Stdin {
			// Not a bufio.Scanner: its longest line is a limit of its own, and a longer line
			// ended the input without a word. A message may be as long as MQTT allows.
			lines := bufio.NewReader(stdin)
			for n := 1; cfg.Count == 0 || n <= cfg.Count; n++ {
				line, err := lines.ReadString('\n')
				if line != "" && !send(strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")) {
					return
				}
				if err != nil {
					if err != io.EOF {
						*readErr = fmt.Errorf("read stdin: %w", err)
					}
					return
				}
			}
			return
		}
		var tick <-chan time.Time
		if cfg.Interval > 0 {
			t := time.NewTicker(cfg.Interval)
			defer t.Stop()
			tick = t.C
		}
		for n := 1; cfg.Count == 0 || n <= cfg.Count; n++ {
			if n > 1 && tick != nil {
				select {
				case <-tick:
				case <-ctx.Done():
					return
				}
			}
			// Rendered when it is sent, so that {time} is the time of sending.
			if !send(Render(cfg.Message, n, cfg.ID, time.Now())) {
				return
			}
		}
	}()
	return out
}

// inflight is a message waiting for the broker's word.
type inflight struct {
	n       int // 0: resent from -store
	topic   string
	payload string
	qos     byte
	start   time.Time
	done    <-chan struct{} // closed on PUBACK/PUBCOMP (QoS 1/2) or the network write (QoS 0)
	token   mqtt.Token      // QoS 0: its error says the write failed
	warned  time.Time
}

type publisher struct {
	cfg                  Config
	client               mqtt.Client
	con                  *console.Console
	out                  *mqttclient.Output
	store                *mqttclient.Store
	drops                atomic.Int32 // connections lost since the last acknowledgement
	queue                []*inflight  // oldest first; lines are printed in this order
	sent, acked, dropped int
	resent, resentAcked  int
}

func (p *publisher) unconfirmed() int {
	return p.sent + p.resent - p.acked - p.resentAcked - p.dropped
}

func (p *publisher) resume(m mqttclient.Stored) {
	ch, _ := p.store.Acked(m.ID)
	p.resent++
	p.queue = append(p.queue, &inflight{topic: m.Topic, payload: m.Payload, qos: m.QoS, start: time.Now(), done: ch})
	if len(p.queue) == 1 {
		p.con.Linef(console.StyleWarn, "RESUMING", "unacknowledged messages from %s are resent", p.cfg.Store)
	}
}

// run publishes every payload, keeping at most Window unacknowledged, then waits for the rest.
func (p *publisher) run(ctx context.Context, payloads <-chan string) error {
	patience := time.NewTicker(time.Second)
	defer patience.Stop()
	for payloads != nil || len(p.queue) > 0 {
		next := payloads
		if len(p.queue) >= Window {
			next = nil // full: wait for the oldest
		}
		var oldest <-chan struct{}
		if len(p.queue) > 0 {
			oldest = p.queue[0].done
		}
		select {
		case payload, ok := <-next:
			if !ok {
				payloads = nil
				continue
			}
			if err := p.publish(payload); err != nil {
				return err
			}
		case <-oldest:
			p.complete()
		case now := <-patience.C:
			if err := p.tooManyDrops(); err != nil {
				return err
			}
			p.warn(now)
		case <-ctx.Done():
			p.drain()
			return ctx.Err()
		}
	}
	return nil
}

// publish hands one message to paho.
func (p *publisher) publish(payload string) error {
	p.sent++
	m := &inflight{n: p.sent, topic: p.cfg.Topic, payload: payload, qos: p.cfg.QoS, start: time.Now()}
	if m.qos == 0 && !p.client.IsConnectionOpen() {
		// paho would accept it and drop it silently.
		p.drop(m, "not connected, and QoS 0 messages are not kept")
		return nil
	}
	if len(p.queue) == 0 {
		p.drops.Store(0) // count only what happens while something waits
	}
	token := p.client.Publish(m.topic, m.qos, p.cfg.Retain, payload)
	if m.qos == 0 {
		m.done, m.token = token.Done(), token
		p.queue = append(p.queue, m)
		return nil
	}
	id := token.(*mqtt.PublishToken).MessageID()
	if id == 0 {
		// Refused before paho kept it: not connected, or no free message id.
		<-token.Done() // completed already: paho sets the error before returning the token
		return fmt.Errorf("publish #%d: %w", m.n, token.Error())
	}
	done, waiting := p.store.Acked(id)
	if !waiting {
		done = closed // the acknowledgement came before we looked
	}
	m.done = done
	p.queue = append(p.queue, m)
	return nil
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// complete reports the oldest message, and every later one that is done as well.
func (p *publisher) complete() {
	for len(p.queue) > 0 {
		m := p.queue[0]
		select {
		case <-m.done:
		default:
			return
		}
		p.queue[0] = nil
		p.queue = p.queue[1:]
		if m.token != nil && m.token.Error() != nil {
			p.drop(m, m.token.Error().Error())
			continue
		}
		p.drops.Store(0)
		if m.n == 0 {
			p.resentAcked++
		} else {
			p.acked++
		}
		p.published(m, time.Now())
	}
}

func label(m *inflight) string {
	if m.n == 0 {
		return "stored"
	}
	return fmt.Sprintf("#%d", m.n)
}

func (p *publisher) drop(m *inflight, why string) {
	p.dropped++
	p.dropLine(m, why)
}

// tooManyDrops ends the run when the broker keeps closing the connection while the oldest
// QoS 1/2 message gets no acknowledgement.
func (p *publisher) tooManyDrops() error {
	if len(p.queue) == 0 || p.queue[0].qos == 0 || p.drops.Load() < MaxDrops {
		return nil
	}
	m := p.queue[0]
	return fmt.Errorf("the broker closed the connection %d times while %s to %s waited for its acknowledgement: "+
		"is this client allowed to publish there?", p.drops.Load(), label(m), m.topic)
}

// warn says so when the oldest message has waited AckTimeout, and again every AckTimeout.
func (p *publisher) warn(now time.Time) {
	if len(p.queue) == 0 {
		return
	}
	m := p.queue[0]
	if now.Sub(m.start) < mqttclient.AckTimeout || now.Sub(m.warned) < mqttclient.AckTimeout {
		return
	}
	m.warned = now
	if m.qos == 0 {
		// A QoS 0 write that does not finish is lost with its connection.
		p.queue = p.queue[1:]
		p.drop(m, "not written to the network in "+mqttclient.AckTimeout.String())
		return
	}
	// QoS 1 and 2 messages stay in paho's store and are sent again after a reconnect.
	p.con.Linef(console.StyleWarn, "WAITING", "%s not acknowledged after %s (%d waiting); kept and resent when the broker is back",
		label(m), now.Sub(m.start).Round(time.Second), len(p.queue))
}

// drain gives messages in flight a moment to be acknowledged after an interrupt.
func (p *publisher) drain() {
	deadline := time.NewTimer(DrainTimeout)
	defer deadline.Stop()
	for len(p.queue) > 0 {
		select {
		case <-p.queue[0].done:
			p.complete()
		case <-deadline.C:
			return
		}
	}
}

func (p *publisher) summary() {
	text := fmt.Sprintf("sent %d, acknowledged %d, dropped %d, unconfirmed %d",
		p.sent, p.acked, p.dropped, p.sent-p.acked-p.dropped)
	if p.cfg.QoS == 0 {
		// No acknowledgement at QoS 0: what counts is whether it was written to the network.
		text = fmt.Sprintf("sent %d, dropped %d", p.acked, p.dropped)
		if unsent := p.sent - p.acked - p.dropped; unsent > 0 {
			text += fmt.Sprintf(", not yet written %d", unsent)
		}
	}
	if p.resent > 0 {
		text += fmt.Sprintf("; resent from the store %d, acknowledged %d", p.resent, p.resentAcked)
	}
	p.con.Line(console.StyleInfo, "SUMMARY", text)
}
