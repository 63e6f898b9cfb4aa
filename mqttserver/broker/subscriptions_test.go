package broker

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/eventlog"
	"mqttdemo/mqttserver/limits"
)

// subscribe sends a SUBSCRIBE of filters at QoS 1 and returns the SUBACK's codes.
func (c *rawClient) subscribe(id uint16, filters ...string) []byte {
	c.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: id}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: 1})
	}
	c.write(pk)
	ack := c.next()
	if ack.FixedHeader.Type != packets.Suback || ack.PacketID != id {
		c.t.Fatalf("want SUBACK %d, got %v", id, ack)
	}
	return ack.ReasonCodes
}

// TestSubscriptionLimits: with -max-subscriptions 3, -max-filter-length 16 and
// -max-filter-levels 4, a session's fourth filter is refused (0x97 quota exceeded; 0x80 in MQTT
// 3.1.1) and so are a longer and a deeper filter (0x8F; 0x80), and none is subscribed. A filter sent twice or held already counts once, an
// unsubscribe frees its place, and the count holds for the session resumed, also from -data.
// Each refusal is counted for /stats and logged with its filter and code.
func TestSubscriptionLimits(t *testing.T) {
	for _, c := range []struct {
		version byte
		data    bool
	}{{4, false}, {5, false}, {4, true}, {5, true}} {
		t.Run(fmt.Sprintf("v%d/data=%v", c.version, c.data), func(t *testing.T) {
			quota, invalid := packets.ErrQuotaExceeded.Code, packets.ErrTopicFilterInvalid.Code
			if c.version < 5 {
				quota, invalid = 0x80, 0x80
			}
			cfg := Config{Limits: limits.DefaultLimits()}
			cfg.MaxSubscriptions, cfg.MaxFilterLength, cfg.MaxFilterLevels = 3, 16, 4
			if c.data {
				cfg.DataDir = t.TempDir()
			}
			b, logs := startBroker(t, cfg)
			cl := dialRawClient(t, b.Addr(), "many", c.version)
			long := strings.Repeat("x", 17)
			check := func(got, want []byte) {
				t.Helper()
				if !slices.Equal(got, want) {
					t.Errorf("SUBACK codes % x, want % x", got, want)
				}
			}
			check(cl.subscribe(1, "a", "b", "a"), []byte{1, 1, 1})
			check(cl.subscribe(11, "c", "d"), []byte{1, quota})
			check(cl.subscribe(2, "a", long, "d/e/f/g/h", "d/e/f/+", "d/+"), []byte{1, invalid, invalid, quota, quota})
			// Neither refused filter holds anything: a message to d reaches no one, while one to
			// c, published after it, does.
			cl.write(publish("d", 0, 0))
			cl.write(publish("c", 0, 0))
			if pk := cl.next(); pk.FixedHeader.Type != packets.Publish || pk.TopicName != "c" {
				t.Errorf("got %v, want the message to c: a refused filter was subscribed", pk)
			}
			cl.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, PacketID: 3,
				Filters: packets.Subscriptions{{Filter: "b"}}})
			if ack := cl.next(); ack.FixedHeader.Type != packets.Unsuback {
				t.Fatalf("want UNSUBACK, got %v", ack)
			}
			check(cl.subscribe(4, "d"), []byte{1})
			_ = cl.conn.Close()

			if c.data {
				waitFor(t, "the session to go offline", func() bool {
					s, ok := b.server.Clients.Get("many")
					return ok && s.Closed()
				})
				if err := b.Close(); err != nil {
					t.Fatal(err)
				}
				b, logs = startBroker(t, cfg)
			}
			cl = dialRawClient(t, b.Addr(), "many", c.version)
			check(cl.subscribe(5, "e", "a"), []byte{quota, 1})

			if got := b.currentStats().SubscriptionsRefused; c.data && got != 1 || !c.data && got != 6 {
				t.Errorf("subscriptions_refused = %d, want the refusals since the start", got)
			}
			waitFor(t, "the refusal logged", func() bool {
				return logs.has(t, eventlog.MsgSubRefused, map[string]any{"filter": "e", "code": fmt.Sprintf("%#02x", quota)})
			})
		})
	}
}

// TestSubscriptionRefusalsSummedUp: one SUBSCRIBE of 300 filters past the limit logs 100
// refusals one by one and sums up the rest in one line.
func TestSubscriptionRefusalsSummedUp(t *testing.T) {
	cfg := Config{Limits: limits.DefaultLimits()}
	cfg.MaxSubscriptions = 1
	b, logs := startBroker(t, cfg)
	cl := dialRawClient(t, b.Addr(), "greedy", 5)
	filters := []string{"kept"}
	for i := range 300 {
		filters = append(filters, fmt.Sprint("more/", i))
	}
	want := append([]byte{1}, bytes.Repeat([]byte{packets.ErrQuotaExceeded.Code}, 300)...)
	if codes := cl.subscribe(1, filters...); !bytes.Equal(codes, want) {
		t.Fatalf("SUBACK codes % x, want 01 then 300 × 97", codes)
	}
	// The lines one by one and the counts of the summaries add up to 300 (a second may end
	// while the filters are refused: then up to twice the lines a second).
	var lines, summed int
	waitFor(t, "the summary line", func() bool {
		lines, summed = 0, 0
		for _, r := range logs.records(t) {
			switch r["msg"] {
			case eventlog.MsgSubRefused:
				lines++
			case eventlog.MsgSubRefusedMore:
				summed += int(r["count"].(float64))
			}
		}
		return lines+summed == 300
	})
	if lines > 2*eventlog.LinesPerSecond {
		t.Errorf("%d refusals logged one by one, want at most %d", lines, 2*eventlog.LinesPerSecond)
	}
	if got := b.currentStats().SubscriptionsRefused; got != 300 {
		t.Errorf("subscriptions_refused = %d, want 300", got)
	}
}

// TestSubscribeCopiesCapped: one SUBSCRIBE carries at most -max-subscriptions filters, copies
// of one filter included; each copy granted is sent the retained messages again, as
// MQTT-3.8.4-3 wants and Mosquitto does. Before, copies were never refused: one SUBSCRIBE of
// 150,000 copies of # over 1,000 retained messages kept the broker busy for 3.5 minutes.
func TestSubscribeCopiesCapped(t *testing.T) {
	cfg := Config{Limits: limits.DefaultLimits()}
	cfg.MaxSubscriptions = 3
	b, _ := startBroker(t, cfg)
	pub := dialRawClient(t, b.Addr(), "pub", 4)
	retained := publish("r/1", 1, 1)
	retained.FixedHeader.Retain = true
	pub.write(retained)
	if ack := pub.next(); ack.FixedHeader.Type != packets.Puback { // retained by now
		t.Fatalf("want PUBACK, got %v", ack)
	}
	for _, version := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			quota := packets.ErrQuotaExceeded.Code
			if version < 5 {
				quota = 0x80
			}
			cl := dialRawClient(t, b.Addr(), fmt.Sprintf("copies-%d", version), version)
			cl.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
				Filters: packets.Subscriptions{{Filter: "r/#"}, {Filter: "r/#"}, {Filter: "r/#"}, {Filter: "r/#"}, {Filter: "r/#"}}})
			// A second SUBSCRIBE is processed once the first one's retained messages are queued:
			// a message published after its SUBACK comes after them.
			cl.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 2,
				Filters: packets.Subscriptions{{Filter: "z/none"}}})
			copies := 0
			for {
				pk := cl.next()
				if pk.FixedHeader.Type == packets.Suback {
					if want := []byte{0, 0, 0, quota, quota}; pk.PacketID == 1 && !slices.Equal(pk.ReasonCodes, want) {
						t.Errorf("SUBACK codes % x, want % x", pk.ReasonCodes, want)
					}
					if pk.PacketID == 2 {
						pub.write(publish("r/end", 0, 0))
					}
					continue
				}
				if pk.TopicName == "r/end" {
					break
				}
				copies++
			}
			if copies != 3 {
				t.Errorf("the retained message came %d times, want 3 (once a copy granted)", copies)
			}
		})
	}
}
