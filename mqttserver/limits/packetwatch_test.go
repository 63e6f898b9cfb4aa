package limits

import (
	"bytes"
	"fmt"
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

// TestLengthOfMoreThanFourBytes: a remaining length of more than four bytes is malformed, though
// mochi reads it (and would take what follows for packets the watch never saw): mochi is kept
// from the header's fourth length byte on, on MQTT 3.1.1 and 5 connections, however the stream
// is cut. Four bytes are read as before.
func TestLengthOfMoreThanFourBytes(t *testing.T) {
	ping := []byte{0xc0, 0}
	long := []byte{0xc0, 0x80, 0x80, 0x80, 0x80, 0x00}                              // 0 in six bytes
	sub := []byte{0x82, 0x88, 0x80, 0x80, 0x80, 0x00, 0, 1, 0, 0, 3, 'a', '/', 'b'} // 8 in five
	four := []byte{0xc0, 0x80, 0x80, 0x80, 0x00}                                    // 0 in four: mochi's to judge
	for _, c := range []struct {
		name string
		in   []byte
		keep int
	}{
		{"a PINGREQ, then a SUBSCRIBE without options", bytes.Join([][]byte{ping, long, subscribe5(0, 1, 'a')}, nil), len(ping) + 4},
		{"the SUBSCRIBE itself", bytes.Join([][]byte{ping, sub}, nil), len(ping) + 4},
		{"four length bytes", bytes.Join([][]byte{ping, four, ping}, nil), len(ping) + len(four) + len(ping)},
	} {
		for _, v5 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, MQTT 5 %v", c.name, v5), func(t *testing.T) {
				for split := 1; split <= len(c.in); split++ {
					w := sizeWatch{limit: 1 << 20, v5: v5}
					if got := feed(&w, c.in, []int{split}[:min(1, len(c.in)-split)]); got != c.keep {
						t.Fatalf("split at %d: mochi given %d bytes of %d, want %d (malformed %q)", split, got, len(c.in), c.keep, w.malformed)
					}
					if bad := w.malformed != ""; bad != (c.keep < len(c.in)) || w.tell {
						t.Fatalf("split at %d: malformed %q, told %v", split, w.malformed, w.tell)
					}
				}
			})
		}
	}
}

// TestPublishQoS3: of an MQTT 5 connection, a PUBLISH of QoS 3 is kept from mochi from its
// first byte (mochi closes at that byte without a word), the client to be told; of an MQTT 3.1.1
// one it is mochi's to close.
func TestPublishQoS3(t *testing.T) {
	ping := []byte{0xc0, 0}
	in := bytes.Join([][]byte{ping, {0x36, 6, 0, 1, 'a', 0, 1, 'x'}, ping}, nil)
	for _, v5 := range []bool{false, true} {
		for split := 1; split <= len(in); split++ {
			w := sizeWatch{limit: 1 << 20, v5: v5}
			got := feed(&w, in, []int{split}[:min(1, len(in)-split)])
			if want := map[bool]int{false: len(in), true: len(ping)}[v5]; got != want || w.tell != v5 {
				t.Fatalf("MQTT 5 %v, split at %d: mochi given %d bytes, want %d; told %v", v5, split, got, want, w.tell)
			}
		}
	}
}
