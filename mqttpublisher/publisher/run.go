// Package publisher is the mqttpublisher program: it publishes time:<now> (or any message) to an
// MQTT topic every interval and reports each message the broker confirms.
package publisher

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"mqttdemo/shared"
)

// Run is the whole mqttpublisher program.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := Load(args, getenv, stderr)
	if err != nil {
		return err
	}
	con := shared.NewConsole(stdout, shared.UseColor(cfg.Color.String(), stdout, getenv))
	opts, err := cfg.Options()
	if err != nil {
		return err
	}
	if cfg.Store != "" {
		opts.SetStore(mqtt.NewFileStore(cfg.Store))
	}
	ready := shared.Announce(opts, con, nil)
	client, err := shared.Connect(ctx, opts, con)
	if errors.Is(err, context.Canceled) {
		return nil // interrupted before the broker came up
	} else if err != nil {
		return err
	}
	shared.AwaitReady(ctx, ready)
	p := &publisher{cfg: cfg, client: client, con: con}
	err = p.run(ctx, messages(ctx, cfg, stdin))
	shared.Disconnect(client)
	p.summary()
	if errors.Is(err, context.Canceled) {
		return nil // Ctrl-C or SIGTERM: a normal end
	}
	return err
}

// messages yields the payloads to publish: one per line of stdin with -stdin, otherwise the
// rendered template once per interval, up to -count.
func messages(ctx context.Context, cfg Config, stdin io.Reader) <-chan string {
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
			lines := bufio.NewScanner(stdin)
			for n := 1; (cfg.Count == 0 || n <= cfg.Count) && lines.Scan(); n++ {
				if !send(lines.Text()) {
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
			if !send(Render(cfg.Message, n, cfg.ID, time.Now())) {
				return
			}
		}
	}()
	return out
}

type publisher struct {
	cfg                  Config
	client               mqtt.Client
	con                  *shared.Console
	sent, acked, dropped int
}

func (p *publisher) run(ctx context.Context, payloads <-chan string) error {
	for payload := range payloads {
		if err := p.publish(ctx, payload); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// publish sends one message and waits for the broker's word on it: PUBACK (QoS 1), PUBCOMP
// (QoS 2) or, at QoS 0, the write to the network.
func (p *publisher) publish(ctx context.Context, payload string) error {
	n := p.sent + 1
	if p.cfg.QoS == 0 && !p.client.IsConnectionOpen() {
		// paho would accept it and drop it silently.
		p.sent++
		p.dropped++
		p.con.Linef(shared.StyleWarn, "DROPPED", "#%d %s: not connected, and QoS 0 messages are not kept", n, p.cfg.Topic)
		return nil
	}
	start := time.Now()
	token := p.client.Publish(p.cfg.Topic, p.cfg.QoS, p.cfg.Retain, payload)
	p.sent++
	patience := time.NewTicker(shared.AckTimeout)
	defer patience.Stop()
	for {
		select {
		case <-token.Done():
			if err := token.Error(); err != nil {
				if p.cfg.QoS == 0 {
					p.dropped++
					p.con.Linef(shared.StyleWarn, "DROPPED", "#%d %s: %v", n, p.cfg.Topic, err)
					return nil
				}
				return fmt.Errorf("publish #%d: %w", n, err)
			}
			p.acked++
			p.con.Linef(shared.StyleMessage, "PUBLISHED", "#%d %s %s %s", n, p.cfg.Topic,
				p.con.Paint(shared.StyleInfo, payload), p.con.Paint(shared.StyleDim, p.confirmation(time.Since(start))))
			return nil
		case <-patience.C:
			// QoS 1 and 2 messages stay in paho's store and are sent again after a reconnect.
			p.con.Linef(shared.StyleWarn, "WAITING", "#%d not acknowledged after %s; kept and resent when the broker is back",
				n, time.Since(start).Round(time.Second))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *publisher) confirmation(d time.Duration) string {
	retain := ""
	if p.cfg.Retain {
		retain = ", retained"
	}
	if p.cfg.QoS == 0 {
		return fmt.Sprintf("(qos 0%s, sent)", retain)
	}
	return fmt.Sprintf("(qos %d%s, acknowledged in %s)", p.cfg.QoS, retain, d.Round(10*time.Microsecond))
}

func (p *publisher) summary() {
	p.con.Linef(shared.StyleInfo, "SUMMARY", "sent %d, acknowledged %d, dropped %d, unconfirmed %d",
		p.sent, p.acked, p.dropped, p.sent-p.acked-p.dropped)
}
