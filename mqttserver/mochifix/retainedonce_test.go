package mochifix

import (
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/internal/bare"
	"mqttdemo/mqttserver/rawmqtt"
)

// TestRetainedOnceToANewSubscriber: with the Hook, a retained message published, or a
// retained will sent, while a subscription is being served reaches the subscriber once.
func TestRetainedOnceToANewSubscriber(t *testing.T) {
	for name, raced := range racers {
		t.Run(name, func(t *testing.T) {
			got := raceRetainedWithSubscribe(t, raced, func(s *mqtt.Server) []mqtt.Hook {
				return []mqtt.Hook{New(s, slog.New(slog.DiscardHandler))}
			})
			if n := strings.Count(strings.Join(got, " "), "raced"); n != 1 {
				t.Errorf("the subscriber got the retained message %d times (%q), want once", n, got)
			}
		})
	}
}

// racers put a retained message on r/raced: a client's PUBLISH, or a client's will.
var racers = map[string]func(t *testing.T, addr string){
	"publish": func(t *testing.T, addr string) {
		pub := bare.Connect(t, addr, rawmqtt.Connect{ID: "racer", Clean: true})
		bare.Write(t, pub, rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
			TopicName: "r/raced", Payload: []byte("raced")}))
	},
	"will": func(t *testing.T, addr string) {
		c := rawmqtt.Connect{ID: "racer", Clean: true, WillTopic: "r/raced", WillPayload: []byte("raced"), WillRetain: true}
		bare.Connect(t, addr, c).Close() // closed without DISCONNECT: the will goes
	},
}

// raceRetainedWithSubscribe serves mochi with hooks, then holds a subscriber's SUBSCRIBE to r/#
// between mochi adding the subscription and giving it the retained messages while raced puts a
// retained message on r/raced, until that message has been delivered or waits at the Hook's
// gate. It returns the payloads the subscriber got.
func raceRetainedWithSubscribe(t *testing.T, raced func(*testing.T, string), hooks func(*mqtt.Server) []mqtt.Hook) []string {
	t.Helper()
	w := &subscribeWindow{inWindow: make(chan struct{}), published: make(chan struct{}), processed: make(chan struct{})}
	_, addr := bare.ServeWith(t, &mqtt.Options{ClientNetWriteBufferSize: WriteBufferSize}, func(s *mqtt.Server) []mqtt.Hook {
		return append(hooks(s), w)
	})
	pub := bare.Connect(t, addr, rawmqtt.Connect{ID: "pub", Clean: true})
	sub := bare.Connect(t, addr, rawmqtt.Connect{ID: "sub", Clean: true})
	bare.Write(t, sub, rawmqtt.Subscribe(1, "r/#", 0))
	for _, step := range []struct {
		what string
		done chan struct{}
		then func()
	}{
		{"the SUBSCRIBE processed", w.inWindow, func() { raced(t, addr) }},
		{"the SUBSCRIBE done", w.processed, nil},
		{"the retained message delivered", w.published, nil},
	} {
		select {
		case <-step.done:
		case <-time.After(bare.Wait):
			t.Fatalf("never: %s", step.what)
		}
		if step.then != nil {
			step.then()
		}
	}
	// Delivered after every copy of r/raced.
	bare.Write(t, pub, rawmqtt.Publish("r/marker", 0, 0, []byte("marker")))
	return bare.ReadUntil(t, sub, "marker")
}

// subscribeWindow holds the SUBSCRIBE of client "sub" in OnSubscribed (after mochi added the
// subscription, before the retained messages) until the message on r/raced has been delivered
// (OnPublished, OnWillSent) or waits at the Hook's gate.
type subscribeWindow struct {
	mqtt.HookBase
	inWindow, published, processed chan struct{}
	once                           sync.Once
}

func (w *subscribeWindow) ID() string { return "test-subscribe-window" }
func (w *subscribeWindow) Provides(b byte) bool {
	return b == mqtt.OnSubscribed || b == mqtt.OnPublished || b == mqtt.OnWillSent || b == mqtt.OnPacketProcessed
}

func (w *subscribeWindow) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) {
	if cl.ID != "sub" {
		return
	}
	close(w.inWindow)
	deadline := time.Now().Add(bare.Wait)
	for time.Now().Before(deadline) {
		select {
		case <-w.published:
			return
		case <-time.After(time.Millisecond):
		}
		if publisherAtGate() {
			return
		}
	}
}

func (w *subscribeWindow) OnPublished(_ *mqtt.Client, pk packets.Packet) {
	if pk.TopicName == "r/raced" {
		w.once.Do(func() { close(w.published) })
	}
}

func (w *subscribeWindow) OnWillSent(cl *mqtt.Client, pk packets.Packet) { w.OnPublished(cl, pk) }

func (w *subscribeWindow) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, _ error) {
	if cl.ID == "sub" && pk.FixedHeader.Type == packets.Subscribe {
		close(w.processed)
	}
}

// publisherAtGate tells whether a goroutine waits for the read lock in Hook.OnPublish or
// Hook.OnWill.
func publisherAtGate() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "sync.(*RWMutex).RLock") && (strings.Contains(g, "mochifix.(*Hook).OnPublish") ||
			strings.Contains(g, "mochifix.(*Hook).OnWill(")) {
			return true
		}
	}
	return false
}
