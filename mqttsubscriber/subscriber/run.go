// Package subscriber is the mqttsubscriber program: it subscribes to MQTT topics and prints every
// message that arrives.
package subscriber

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"mqttdemo/shared/console"
	"mqttdemo/shared/mqttclient"
)

// ErrTimeout ends the program when -timeout passes without a message.
var ErrTimeout = errors.New("no message arrived in time")

// finishWait bounds the wait at the end for the broker's PUBREL of QoS 2 messages printed.
const finishWait = time.Second

// Run is the whole mqttsubscriber program.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := Load(args, getenv, stderr)
	if err != nil {
		return err
	}
	out := mqttclient.NewOutput(cfg.ClientConfig, stdout, stderr, getenv)
	con := out.Con
	s := &subscriber{cfg: cfg, con: con, inbox: newInbox(), fatal: make(chan error, 1)}
	opts, err := cfg.Options()
	if err != nil {
		return err
	}
	// A message is acknowledged once it is printed, not when paho hands it over: one that
	// arrives after -count is reached, or while the program stops, stays with the broker for the
	// next session (-clean=false) instead of being lost.
	opts.SetAutoAckDisabled(true)
	store := mqttclient.NewStore(mqtt.NewMemoryStore())
	store.OnRelease(s.inbox.release)
	store.OnComplete(s.inbox.complete)
	opts.SetStore(store)
	if cfg.Debug {
		mqttclient.Trace(opts, out.Packet)
	}
	mqttclient.KeepReleases(opts, store) // for OnComplete: this program publishes nothing
	// Set before connecting: a persistent session may deliver queued messages straight away.
	opts.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { s.inbox.push(m) })
	ready := mqttclient.Announce(opts, con, store, s.subscribe)
	// -timeout counts from the start, connecting included.
	start := time.Now()
	connectCtx := ctx
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		connectCtx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	client, err := mqttclient.Connect(connectCtx, opts, con)
	if errors.Is(err, context.DeadlineExceeded) {
		// Not "no message arrived": it never reached a broker, and that is what to look into.
		why := "no broker answered"
		var nc *mqttclient.NotConnectedError
		if errors.As(err, &nc) {
			why = nc.Last.Error()
		}
		return fmt.Errorf("could not connect to the broker within %s (-timeout): %s", cfg.Timeout, why)
	} else if errors.Is(err, context.Canceled) {
		return nil
	} else if err != nil {
		return err
	}
	s.start = start
	mqttclient.AwaitReady(ctx, ready)
	defer func() {
		// Finish the QoS 2 exchanges of the messages printed: a DISCONNECT before the PUBCOMP
		// ends a clean session with the message still in flight, and the broker counts it lost.
		if n := s.inbox.settle(finishWait); n > 0 {
			s.con.Linef(console.StyleWarn, "UNFINISHED", "%d QoS 2 message(s) printed, but the broker did not release them within %s: it may send them again", n, finishWait)
		}
		mqttclient.Disconnect(client)
	}()
	err = s.receive(ctx, client, newPrinter(cfg, out), console.EnterPresses(stdin), console.EnterPrompt(stdin, "unsubscribe"))
	if errors.Is(err, context.Canceled) {
		return nil // Ctrl-C or SIGTERM: a normal end
	}
	return err
}

type subscriber struct {
	cfg          Config
	con          *console.Console
	inbox        *inbox
	unsubscribed atomic.Bool
	start        time.Time // -timeout counts from here until the first message
	fatal        chan error
}

func (s *subscriber) timeoutError() error {
	return fmt.Errorf("%w: waited %s (-timeout)", ErrTimeout, s.cfg.Timeout)
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
	if err := mqttclient.Wait(context.Background(), token, "subscribe"); err != nil {
		s.con.Line(console.StyleError, "ERROR", err.Error())
		return
	}
	granted := token.(*mqtt.SubscribeToken).Result()
	refused := 0
	for _, t := range s.cfg.Topics {
		if q := granted[t]; q > 2 {
			refused++
			s.con.Linef(console.StyleError, "REFUSED", "the broker refused the subscription to %s", t)
		} else {
			s.con.Linef(console.StyleSubscribe, "SUBSCRIBED", "%s (qos %d)", t, q)
		}
	}
	if refused == len(s.cfg.Topics) {
		// As mosquitto_sub: nothing can ever arrive.
		select {
		case s.fatal <- errors.New("the broker refused every subscription (not authorised for these topics?)"):
		default:
		}
	}
}

// receive prints messages until -count, -timeout, the second Enter, or ctx ends it; prompt says
// what Enter does.
func (s *subscriber) receive(ctx context.Context, client mqtt.Client, out *printer, enter <-chan struct{}, prompt string) error {
	if enter != nil {
		s.con.Line(console.StyleDim, "INFO", prompt)
	}
	var timeout <-chan time.Time
	var timer *time.Timer
	if s.cfg.Timeout > 0 {
		timer = time.NewTimer(s.cfg.Timeout - time.Since(s.start))
		defer timer.Stop()
		timeout = timer.C
	}
	received := 0
	for {
		select {
		case <-s.inbox.ready:
			msgs, dups := s.inbox.take()
			if dups > 0 {
				s.con.Linef(console.StyleDim, "DUPLICATE", "%d QoS 2 resend(s) of messages already printed: not printed again", dups)
			}
			for _, m := range msgs {
				if err := out.print(m.Message); err != nil {
					return err
				}
				m.ack()
				received++
				if s.cfg.Count > 0 && received >= s.cfg.Count {
					return nil
				}
			}
			if timer != nil && len(msgs) > 0 {
				timer.Reset(s.cfg.Timeout)
			}
		case <-enter:
			if s.unsubscribed.Load() {
				return nil
			}
			s.unsubscribed.Store(true)
			err := mqttclient.Wait(ctx, client.Unsubscribe(s.cfg.Topics...), "unsubscribe")
			if err != nil {
				return err
			}
			s.con.Linef(console.StyleUnsubscribe, "UNSUBSCRIBED", "%s; press Enter to exit", strings.Join(s.cfg.Topics, ", "))
		case <-timeout:
			return s.timeoutError()
		case err := <-s.fatal:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// inbox takes messages from paho's handler without ever blocking it: a blocked handler stalls
// paho's reading, keep-alive included. The main loop prints them in arrival order.
//
// It also drops resends of QoS 2 messages, which paho would hand over again: one printed whose
// PUBREL has not come yet (MQTT 3.1.1, 4.3.3: the receiver must not deliver it twice), and one
// the broker sends again, marked DUP, after it had released it: a broker restarted from state
// saved a moment before (Mosquitto after SIGKILL) does that.
type inbox struct {
	mu         sync.Mutex
	msgs       []received
	open       map[uint16]uint64 // QoS 2 ids printed, not yet released -> fingerprint
	released   map[uint16]uint64 // QoS 2 ids released, not yet reused -> fingerprint
	unfinished map[uint16]bool   // QoS 2 ids answered with PUBREC, whose PUBCOMP is not written yet
	dups       int               // QoS 2 resends dropped
	ready      chan struct{}
	completed  chan struct{} // a PUBCOMP was written
}

// received is a message waiting to be printed, and the acknowledgement to send once it is.
type received struct {
	Message
	ack func()
}

func newInbox() *inbox {
	return &inbox{ready: make(chan struct{}, 1), completed: make(chan struct{}, 1),
		open: make(map[uint16]uint64), released: make(map[uint16]uint64), unfinished: make(map[uint16]bool)}
}

func (b *inbox) push(m mqtt.Message) {
	msg := received{
		Message: Message{
			Topic:      m.Topic(),
			Payload:    string(m.Payload()),
			QoS:        m.Qos(),
			Retained:   m.Retained(),
			Duplicate:  m.Duplicate(),
			ReceivedAt: time.Now(),
		},
		ack: m.Ack,
	}
	b.mu.Lock()
	if id := m.MessageID(); m.Qos() == 2 {
		key := fingerprint(msg.Topic, msg.Payload)
		if b.open[id] == key || (m.Duplicate() && b.released[id] == key) {
			b.dups++
			b.unfinished[id] = true
			b.mu.Unlock()
			m.Ack() // PUBREC again, so that the broker goes on to PUBREL
			b.signal()
			return
		}
		delete(b.released, id)
		b.open[id] = key
		msg.ack = func() {
			b.mu.Lock()
			b.unfinished[id] = true
			b.mu.Unlock()
			m.Ack()
		}
	}
	b.msgs = append(b.msgs, msg)
	b.mu.Unlock()
	b.signal()
}

func (b *inbox) signal() {
	select {
	case b.ready <- struct{}{}:
	default: // already signalled; take() will get this one too
	}
}

// release forgets a QoS 2 id: the broker has released the message, the id may be reused.
func (b *inbox) release(id uint16) {
	b.mu.Lock()
	if key, ok := b.open[id]; ok {
		b.released[id] = key
		delete(b.open, id)
	}
	b.mu.Unlock()
}

// complete forgets a QoS 2 id whose PUBCOMP has been written: its exchange is over.
func (b *inbox) complete(id uint16) {
	b.mu.Lock()
	delete(b.unfinished, id)
	b.mu.Unlock()
	select {
	case b.completed <- struct{}{}:
	default:
	}
}

// settle waits up to limit for the exchanges of the QoS 2 messages acknowledged to end, and
// returns how many have not.
func (b *inbox) settle(limit time.Duration) int {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		n := len(b.unfinished)
		b.mu.Unlock()
		if n == 0 {
			return 0
		}
		select {
		case <-b.completed:
		case <-deadline.C:
			return n
		}
	}
}

// fingerprint identifies a message by content; kept instead of the payload, which may be large.
func fingerprint(topic, payload string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write([]byte(payload))
	return h.Sum64()
}

// take returns the messages waiting and how many QoS 2 resends were dropped since the last call.
func (b *inbox) take() ([]received, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	msgs, dups := b.msgs, b.dups
	b.msgs, b.dups = nil, 0
	return msgs, dups
}
