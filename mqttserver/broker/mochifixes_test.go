package broker

import (
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
)

func TestQueueOrder(t *testing.T) {
	for _, c := range []struct {
		ids, want []uint16
	}{
		{[]uint16{3, 1, 2}, []uint16{1, 2, 3}},
		{[]uint16{2, 65535, 1, 65534}, []uint16{65534, 65535, 1, 2}}, // the ids wrapped around
		{[]uint16{10, 40000, 11}, []uint16{40000, 10, 11}},           // widest gap is before 40000
		{[]uint16{7}, []uint16{7}},
	} {
		var in []packets.Packet
		for _, id := range c.ids {
			in = append(in, packets.Packet{PacketID: id})
		}
		var got []uint16
		for _, m := range QueueOrder(in) {
			got = append(got, m.PacketID)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("QueueOrder(%v) = %v, want %v", c.ids, got, c.want)
		}
	}
}

// TestPersistentSessionComesBack: a client returns to a persistent session that holds queued
// QoS 1 messages and subscribes again, as every client does. Its SUBSCRIBE (packet id 1)
// must be granted, the queue must arrive complete and in order, and its UNSUBSCRIBE must work.
func TestPersistentSessionComesBack(t *testing.T) {
	cfg := Config{Listen: "127.0.0.1:0", LogLevel: slog.LevelWarn, LogFormat: "json", Limits: DefaultLimits()}
	b, err := New(cfg, slog.New(slog.DiscardHandler), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	url := "tcp://" + b.Addr()

	got := make(chan string, 100)
	subscriber := func() paho.Client {
		o := paho.NewClientOptions().AddBroker(url).SetClientID("returning").SetCleanSession(false).SetProtocolVersion(4)
		o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) })
		c := paho.NewClient(o)
		mustWait(t, c.Connect(), "connect")
		tok := c.Subscribe("queue", 1, nil)
		mustWait(t, tok, "subscribe")
		if q := tok.(*paho.SubscribeToken).Result()["queue"]; q != 1 {
			t.Fatalf("SUBACK granted %#x, want QoS 1", q)
		}
		return c
	}
	sub := subscriber()
	sub.Disconnect(100)

	pub := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("pub").SetProtocolVersion(4))
	mustWait(t, pub.Connect(), "connect publisher")
	defer pub.Disconnect(100)
	const n = 20
	for i := 1; i <= n; i++ {
		mustWait(t, pub.Publish("queue", 1, false, strconv.Itoa(i)), "publish")
	}

	sub = subscriber() // fails here without the fix: SUBACK 0x80
	defer sub.Disconnect(100)
	for want := 1; want <= n; want++ {
		select {
		case m := <-got:
			if m != strconv.Itoa(want) {
				t.Fatalf("message %q arrived where %d was due: the queue came back out of order", m, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d of the queue never arrived", want)
		}
	}

	mustWait(t, sub.Unsubscribe("queue"), "unsubscribe")
	mustWait(t, pub.Publish("queue", 1, false, "after"), "publish")
	mustWait(t, pub.Publish("marker", 1, false, "x"), "publish") // flushed through the broker
	select {
	case m := <-got:
		t.Fatalf("got %q after UNSUBSCRIBE", m)
	case <-time.After(300 * time.Millisecond): // a bounded look for a message that must not come
	}
}

func mustWait(t *testing.T, tok paho.Token, what string) {
	t.Helper()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestSetAsideIDNotReused: while the broker's message with the id of a client's SUBSCRIBE is
// set aside, no new message may take that id. A resumed session's counter starts at 0 and the
// client's SUBSCRIBE often has the id of a queued message: a message published at that moment
// took it, the SUBSCRIBE was refused (0x91) and the message set aside was lost.
func TestSetAsideIDNotReused(t *testing.T) {
	b, _ := startBroker(t, Config{})
	first := rawConnect(t, b.Addr(), "resumer", false)
	rawExchange(t, first, fzSubscribe(1, "q/#", 1), 0x90, 1)
	_, _ = first.Write([]byte{0xe0, 0}) // DISCONNECT
	waitFor(t, "the session to be offline", func() bool {
		cl, ok := b.server.Clients.Get("resumer")
		return ok && cl.Closed()
	})
	pub := rawConnect(t, b.Addr(), "pub", true)
	rawExchange(t, pub, fzPublish(1, 1, "q/x", "queued"), 0x40, 1)

	back := rawConnect(t, b.Addr(), "resumer", false)
	if pk, err := fzReadPacket(back); err != nil || pk[0]&0xf0 != 0x30 {
		t.Fatalf("want the queued message resent, got % x, %v", pk, err)
	}
	cl, _ := b.server.Clients.Get("resumer")
	queued := cl.State.Inflight.GetAll(false)
	if len(queued) != 1 {
		t.Fatalf("in flight on the resumed session: %v, want the queued message", queued)
	}
	held := queued[0]

	// The client's SUBSCRIBE carries the id of the queued message, as the next one would.
	h := &packetIDHook{server: b.server, log: slog.New(slog.DiscardHandler)}
	sub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: held.PacketID}
	if _, err := h.OnPacketRead(cl, sub); err != nil {
		t.Fatal(err)
	}
	for range held.PacketID { // messages queued meanwhile: the counter starts again at 0
		if id, err := cl.NextPacketID(); err != nil || id == uint32(held.PacketID) {
			t.Fatalf("a new message got id %d (%v) while the message with that id was set aside", id, err)
		}
	}
	h.OnPacketProcessed(cl, sub, nil)
	if back, ok := cl.State.Inflight.Get(held.PacketID); !ok || string(back.Payload) != string(held.Payload) {
		t.Errorf("the message set aside did not come back under id %d", held.PacketID)
	}
}
