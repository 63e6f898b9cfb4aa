// Package subscriber is the mqttsubscriber program: it subscribes to MQTT topics and prints every
// message that arrives.
package subscriber

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"mqttdemo/shared"
)

// ErrTimeout ends the program when -timeout passes without a message.
var ErrTimeout = errors.New("no message arrived in time")

// Run is the whole mqttsubscriber program.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := Load(args, getenv, stderr)
	if err != nil {
		return err
	}
	// With -json, stdout carries only the messages; what the program says goes to stderr.
	talk := stdout
	if cfg.JSON {
		talk = stderr
	}
	con := shared.NewConsole(talk, shared.UseColor(cfg.Color.String(), talk, getenv))
	s := &subscriber{cfg: cfg, con: con, inbox: newInbox()}
	opts, err := cfg.Options()
	if err != nil {
		return err
	}
	// Set before connecting: a persistent session may deliver queued messages straight away.
	opts.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { s.inbox.push(m) })
	ready := shared.Announce(opts, con, s.subscribe)
	client, err := shared.Connect(ctx, opts, con)
	if errors.Is(err, context.Canceled) {
		return nil
	} else if err != nil {
		return err
	}
	shared.AwaitReady(ctx, ready)
	defer shared.Disconnect(client)
	err = s.receive(ctx, client, newPrinter(cfg, con, stdout), shared.EnterPresses(stdin))
	if errors.Is(err, context.Canceled) {
		return nil // Ctrl-C or SIGTERM: a normal end
	}
	return err
}

type subscriber struct {
	cfg          Config
	con          *shared.Console
	inbox        *inbox
	unsubscribed atomic.Bool
}

// subscribe runs on every (re)connect, on its own goroutine, so it may wait for the SUBACK.
func (s *subscriber) subscribe(c mqtt.Client) {
	if s.unsubscribed.Load() {
		return
	}
	filters := make(map[string]byte, len(s.cfg.Topics))
	for _, t := range s.cfg.Topics {
		filters[t] = s.cfg.QoS
	}
	token := c.SubscribeMultiple(filters, nil)
	if err := shared.Wait(context.Background(), token, "subscribe"); err != nil {
		s.con.Line(shared.StyleError, "ERROR", err.Error())
		return
	}
	granted := token.(*mqtt.SubscribeToken).Result()
	for _, t := range s.cfg.Topics {
		if q := granted[t]; q > 2 {
			s.con.Linef(shared.StyleError, "REFUSED", "the broker refused the subscription to %s", t)
		} else {
			s.con.Linef(shared.StyleSubscribe, "SUBSCRIBED", "%s (qos %d)", t, q)
		}
	}
}

// receive prints messages until -count, -timeout, the second Enter, or ctx ends it.
func (s *subscriber) receive(ctx context.Context, client mqtt.Client, out *printer, enter <-chan struct{}) error {
	if enter != nil {
		s.con.Line(shared.StyleDim, "INFO", "press Enter to unsubscribe")
	}
	var timeout <-chan time.Time
	var timer *time.Timer
	if s.cfg.Timeout > 0 {
		timer = time.NewTimer(s.cfg.Timeout)
		defer timer.Stop()
		timeout = timer.C
	}
	received := 0
	for {
		select {
		case <-s.inbox.ready:
			for _, m := range s.inbox.take() {
				if err := out.print(m); err != nil {
					return err
				}
				received++
				if s.cfg.Count > 0 && received >= s.cfg.Count {
					return nil
				}
			}
			if timer != nil {
				timer.Reset(s.cfg.Timeout)
			}
		case <-enter:
			if s.unsubscribed.Load() {
				return nil
			}
			s.unsubscribed.Store(true)
			err := shared.Wait(ctx, client.Unsubscribe(s.cfg.Topics...), "unsubscribe")
			if err != nil {
				return err
			}
			s.con.Linef(shared.StyleUnsubscribe, "UNSUBSCRIBED", "%s; press Enter to exit", strings.Join(s.cfg.Topics, ", "))
		case <-timeout:
			return fmt.Errorf("%w: waited %s (-timeout)", ErrTimeout, s.cfg.Timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// inbox takes messages from paho's handler without ever blocking it: a blocked handler stalls
// paho's reading, keep-alive included. The main loop prints them in arrival order.
type inbox struct {
	mu    sync.Mutex
	msgs  []Message
	ready chan struct{}
}

func newInbox() *inbox { return &inbox{ready: make(chan struct{}, 1)} }

func (b *inbox) push(m mqtt.Message) {
	msg := Message{
		Topic:      m.Topic(),
		Payload:    string(m.Payload()),
		QoS:        m.Qos(),
		Retained:   m.Retained(),
		Duplicate:  m.Duplicate(),
		ReceivedAt: time.Now(),
	}
	b.mu.Lock()
	b.msgs = append(b.msgs, msg)
	b.mu.Unlock()
	select {
	case b.ready <- struct{}{}:
	default: // already signalled; take() will get this one too
	}
}

func (b *inbox) take() []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	msgs := b.msgs
	b.msgs = nil
	return msgs
}
