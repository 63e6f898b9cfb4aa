package limits

import (
	"bytes"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqttdemo/mqttserver/rawmqtt"
)

// subscribe5 is an MQTT 5 SUBSCRIBE, packet id 1, no properties, with body as its filters.
func subscribe5(body ...byte) []byte { return rawmqtt.Frame(0x82, []byte{0, 1, 0}, body) }

// TestSubscribeWatch: of an MQTT 5 connection, a malformed SUBSCRIBE is found and mochi is given
// everything before its last byte, whole, in two chunks split anywhere, or a byte at a time; a
// well-formed one, and anything of an MQTT 3.1.1 connection, is given whole.
func TestSubscribeWatch(t *testing.T) {
	ping := []byte{0xc0, 0}
	for _, c := range []struct {
		name string
		in   []byte
		bad  bool
	}{
		{"one filter", subscribe5(0, 1, 'a', 0x01), false},
		{"two filters, every option bit allowed", subscribe5(append(append(rawmqtt.String("a/#"), 0x2e), append(rawmqtt.String("b"), 0x12)...)...), false},
		{"with a property", rawmqtt.Frame(0x82, []byte{0, 1, 2, packets.PropSubscriptionIdentifier, 5}, rawmqtt.String("a"), []byte{0}), false},
		{"a long filter", subscribe5(append(rawmqtt.String(string(bytes.Repeat([]byte{'x'}, 300))), 1)...), false},
		{"no filter (mochi refuses it, 0x82)", subscribe5(), false},
		{"a filter without its options (mochi-mqtt/server#501)", subscribe5(0, 1, 'a'), true},
		{"an empty filter without its options", subscribe5(0, 0), true},
		{"the second filter without its options", subscribe5(0, 1, 'a', 0, 0, 1, 'b'), true},
		{"a filter cut short", subscribe5(0, 3, 'a'), true},
		{"reserved bit 6", subscribe5(0, 1, 'a', 0x40), true},
		{"reserved bit 7", subscribe5(0, 1, 'a', 0x81), true},
		{"retain handling 3", subscribe5(0, 1, 'a', 0x30), true},
		{"QoS 3", subscribe5(0, 1, 'a', 0x03), true},
		{"empty", []byte{0x82, 0}, true},
		{"no packet id", []byte{0x82, 1, 0}, true},
		{"no properties length", []byte{0x82, 2, 0, 1}, true},
		{"properties past the packet", []byte{0x82, 4, 0, 1, 5, 0x0b}, true},
		{"a properties length of five bytes", []byte{0x82, 8, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x01, 0}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := bytes.Join([][]byte{ping, c.in, ping}, nil)
			want := len(in)
			if c.bad {
				want = len(ping) + len(c.in) - 1
			}
			chunkings := [][]int{nil} // split points
			for i := 1; i < len(in); i++ {
				chunkings = append(chunkings, []int{i})
			}
			bytewise := make([]int, 0, len(in))
			for i := 1; i < len(in); i++ {
				bytewise = append(bytewise, i)
			}
			chunkings = append(chunkings, bytewise)
			for _, splits := range chunkings {
				w := sizeWatch{limit: 1 << 20, v5: true}
				if got := feed(&w, in, splits); got != want || (w.malformed != "") != c.bad {
					t.Fatalf("split at %v: mochi given %d bytes of %d (want %d), malformed %q", splits, got, len(in), want, w.malformed)
				}
			}
			w := sizeWatch{limit: 1 << 20} // MQTT 3.1.1: mochi refuses what it cannot decode
			if got := feed(&w, in, nil); got != len(in) || w.malformed != "" {
				t.Fatalf("MQTT 3.1.1: mochi given %d bytes of %d, malformed %q", got, len(in), w.malformed)
			}
		})
	}
}

// feed gives w the chunks of in cut at splits, as the connection reads them, and returns how
// many bytes mochi is given: the connection stops at the first chunk w keeps a part of.
func feed(w *sizeWatch, in []byte, splits []int) int {
	given, from := 0, 0
	for _, to := range append(splits, len(in)) {
		_, keep := w.read(in[from:to])
		given += keep
		if keep < to-from {
			break
		}
		from = to
	}
	return given
}
