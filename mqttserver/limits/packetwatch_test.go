package limits

import (
	"bytes"
	"testing"
)

// TestDisconnectReasonWatch: the reason code of an MQTT 5 DISCONNECT of one byte is read
// however the stream is cut; a longer DISCONNECT (mochi reads its code), an empty one and any
// of an MQTT 3.1.1 connection leave none.
func TestDisconnectReasonWatch(t *testing.T) {
	ping := []byte{0xc0, 0}
	for _, c := range []struct {
		name   string
		in     []byte
		v5     bool
		reason byte
		found  bool
	}{
		{"0x04 alone", []byte{0xe0, 1, 0x04}, true, 0x04, true},
		{"0x00 alone", []byte{0xe0, 1, 0x00}, true, 0x00, true},
		{"with a properties length", []byte{0xe0, 2, 0x04, 0}, true, 0, false},
		{"empty", []byte{0xe0, 0}, true, 0, false},
		{"MQTT 3.1.1", []byte{0xe0, 0}, false, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := bytes.Join([][]byte{ping, c.in}, nil)
			for split := 1; split <= len(in); split++ {
				w := sizeWatch{limit: 1 << 20, v5: c.v5}
				if got := feed(&w, in, []int{split}[:min(1, len(in)-split)]); got != len(in) {
					t.Fatalf("mochi given %d bytes of %d", got, len(in))
				}
				if reason, found := w.disconnectReason(); reason != c.reason || found != c.found {
					t.Errorf("split at %d: reason %#x, found %v; want %#x, %v", split, reason, found, c.reason, c.found)
				}
			}
		})
	}
}
