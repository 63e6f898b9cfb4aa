package tests

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
	"mqttdemo/tests/harness"
)

// TestSecuritySubscriptionCap: the real broker with its default limits. One MQTT 5 client
// subscribing to 1,001 filters gets its 1,001st refused (SUBACK 0x97 quota exceeded), a filter
// of 1,025 bytes or of 33 levels refused as invalid (0x8F), and /stats counts the three
// refusals. Without a cap one client held 100,000 filters and 315 MB. A SUBSCRIBE of 1,001
// copies of # gets its 1,001st refused too.
func TestSecuritySubscriptionCap(t *testing.T) {
	server, url := harness.StartServer(t, nil, "-http-listen", "127.0.0.1:0")
	c, code := rawConnect(t, hostPort(url), connectOpts{version: 5, id: "greedy"})
	if code != 0 {
		t.Fatalf("CONNACK %#02x", code)
	}
	var filters packets.Subscriptions
	for i := range 1001 {
		filters = append(filters, packets.Subscription{Filter: fmt.Sprint("f/", i)})
	}
	filters = append(filters, packets.Subscription{Filter: strings.Repeat("x", 1025)},
		packets.Subscription{Filter: strings.Repeat("a/", 32) + "b"})
	c.send(t, rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe},
		ProtocolVersion: 5, PacketID: 1, Filters: filters}))
	ack, err := rawmqtt.Decode(c.read(t), 5)
	if err != nil || ack.FixedHeader.Type != packets.Suback || len(ack.ReasonCodes) != len(filters) {
		t.Fatalf("want a SUBACK with %d codes, got %v (%v)", len(filters), ack, err)
	}
	for i, want := range map[int]byte{0: 0, 999: 0, 1000: 0x97, 1001: 0x8F, 1002: 0x8F} {
		if got := ack.ReasonCodes[i]; got != want {
			t.Errorf("filter %d: code %#02x, want %#02x", i, got, want)
		}
	}
	if got := statsCounter(t, server, "subscriptions_refused"); got != 3 {
		t.Errorf("/stats subscriptions_refused = %d, want 3", got)
	}

	// Copies of one filter count for the packet: each copy granted is sent the retained
	// messages again (MQTT-3.8.4-3), so 150,000 copies of # in one packet kept the broker busy
	// for minutes.
	copies, code := rawConnect(t, hostPort(url), connectOpts{version: 4, id: "copies"})
	if code != 0 {
		t.Fatalf("CONNACK %#02x", code)
	}
	filters = nil
	for range 1001 {
		filters = append(filters, packets.Subscription{Filter: "#"})
	}
	copies.send(t, rawmqtt.Encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe},
		ProtocolVersion: 4, PacketID: 1, Filters: filters}))
	ack, err = rawmqtt.Decode(copies.read(t), 4)
	if err != nil || ack.FixedHeader.Type != packets.Suback || len(ack.ReasonCodes) != len(filters) {
		t.Fatalf("want a SUBACK with %d codes, got %v (%v)", len(filters), ack, err)
	}
	for i, want := range map[int]byte{0: 0, 999: 0, 1000: 0x80} {
		if got := ack.ReasonCodes[i]; got != want {
			t.Errorf("copy %d of #: code %#02x, want %#02x", i, got, want)
		}
	}
	if got := statsCounter(t, server, "subscriptions_refused"); got != 4 {
		t.Errorf("/stats subscriptions_refused = %d, want 4", got)
	}
}
