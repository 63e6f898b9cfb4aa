package mochifix

import (
	"log/slog"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/internal/bare"
)

// TestNotedAfterHandOverIsForwarded: a message queued to a session being taken over is noted
// on the take-over's list, which is handed to the new connection once it is served. A publisher
// that looked the list up just before it was handed over, and noted its message just after,
// left the message on a list no one reads: lost. It must be forwarded to the new connection.
func TestNotedAfterHandOverIsForwarded(t *testing.T) {
	server, addr := startServer(t)
	first := connect(t, addr, "resumer", nil)
	if tok := first.Subscribe("q/#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	first.Disconnect(100)
	waitFor(t, "the session to be offline", func() bool {
		cl, ok := server.Clients.Get("resumer")
		return ok && cl.Closed()
	})
	old, _ := server.Clients.Get("resumer")
	got := make(chan string, 10)
	connect(t, addr, "resumer", func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }) // takes the session over
	cur, _ := server.Clients.Get("resumer")
	if cur == old || !old.IsTakenOver() {
		t.Fatal("the session was not taken over")
	}

	// A second hook, driven by hand: the list, already handed over, as the publisher's lookup
	// found it.
	h := New(server, slog.New(slog.DiscardHandler))
	q := &queued{old: old}
	h.handOver(cur, q)
	h.takeovers.Store(old, q)
	h.nTakeovers.Add(1)
	late := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName: "q/x", Payload: []byte("late"), PacketID: 7}
	old.State.Inflight.Set(late) // as mochi does before it calls OnQosPublish
	h.OnQosPublish(old, late, late.Created, 0)

	select {
	case p := <-got:
		if p != "late" {
			t.Fatalf("the new connection got %q, want the message noted late", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the message noted late never reached the new connection")
	}
}

// startServer serves mochi with the mends, open to anyone, on a loopback port.
func startServer(t *testing.T) (*mqtt.Server, string) {
	t.Helper()
	return bare.ServeWith(t, nil, func(s *mqtt.Server) []mqtt.Hook { return []mqtt.Hook{New(s, slog.New(slog.DiscardHandler))} })
}

// connect connects a persistent-session client with id, handing its messages to onMessage.
func connect(t *testing.T, addr, id string, onMessage paho.MessageHandler) paho.Client {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(false).
		SetAutoReconnect(false).SetDefaultPublishHandler(onMessage)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
