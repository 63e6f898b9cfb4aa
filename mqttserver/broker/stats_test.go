package broker

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
)

// TestBinaryStatsCounters: the real binary's /stats after a persistent client came and went,
// and after it came back and acknowledged its queue. mochi counted the queue as gone when the
// session was taken over and again when it was acknowledged (inflight -3), and /stats showed
// the client totals of the last $SYS tick (0 for a client that came and went within it).
func TestBinaryStatsCounters(t *testing.T) {
	_, started := startBinary(t, "-listen", "127.0.0.1:0", "-http-listen", "127.0.0.1:0")
	mqttAddr, stats := addr(t, started, "mqtt"), "http://"+addr(t, started, "http")+"/stats"

	keeper := rawConnect(t, mqttAddr, "keeper", false)
	rawExchange(t, keeper, rawmqtt.Subscribe(1, "q/#", 1), 0x90, 1)
	if _, err := keeper.Write(rawmqtt.Disconnect()); err != nil {
		t.Fatal(err)
	}
	var s statsView
	waitFor(t, "/stats to count no client connected", func() bool {
		s = getStats(t, stats)
		return s.ClientsConnected == 0
	})
	if s.ClientsTotal != 1 || s.ClientsDisconnected != 1 {
		t.Errorf("a persistent client that came and went: clients_total %d, clients_disconnected %d; want 1 and 1",
			s.ClientsTotal, s.ClientsDisconnected)
	}

	pub := rawConnect(t, mqttAddr, "pub", true)
	for i := range 3 {
		rawExchange(t, pub, rawmqtt.Publish("q/a", 1, uint16(i+1), []byte("m")), 0x40, i+1)
	}
	// mochi writes the PUBACK before it queues the copy: wait for the count.
	waitFor(t, "/stats to count the 3 queued messages in flight", func() bool { return getStats(t, stats).Inflight == 3 })
	keeper = rawConnect(t, mqttAddr, "keeper", false)
	for range 3 {
		_ = keeper.SetReadDeadline(time.Now().Add(10 * time.Second))
		raw, err := rawmqtt.Read(keeper)
		if err != nil {
			t.Fatalf("want a queued PUBLISH: %v", err)
		}
		pk, err := rawmqtt.Decode(raw, 4)
		if err != nil || pk.FixedHeader.Type != packets.Publish {
			t.Fatalf("want a queued PUBLISH, got % x %v", raw, err)
		}
		if _, err := keeper.Write(rawmqtt.Ack(packets.Puback, pk.PacketID)); err != nil {
			t.Fatal(err)
		}
	}
	rawExchange(t, keeper, rawmqtt.Pingreq(), 0xd0, -1) // PINGRESP: the PUBACKs before it are handled
	if s = getStats(t, stats); s.Inflight != 0 {
		t.Errorf("the resumed session acknowledged its 3 queued messages: inflight %d, want 0", s.Inflight)
	}
}

type statsView struct {
	ClientsConnected    int64 `json:"clients_connected"`
	ClientsDisconnected int64 `json:"clients_disconnected"`
	ClientsTotal        int64 `json:"clients_total"`
	Inflight            int64 `json:"inflight"`
}

func getStats(t *testing.T, url string) statsView {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s statsView
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("/stats: %v", err)
	}
	return s
}
