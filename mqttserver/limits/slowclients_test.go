package limits

import (
	"bytes"
	mqtt "github.com/mochi-mqtt/server/v2"
	"log/slog"
	"testing"
)

// TestWithoutQoS0 drops exactly the QoS 0 PUBLISH packets of a write, whole, and counts them.
func TestWithoutQoS0(t *testing.T) {
	pub0 := []byte{0x30, 6, 0, 2, 'a', '/', 'h', 'i'}                          // QoS 0 PUBLISH a/ "hi"
	pub1 := []byte{0x32, 8, 0, 2, 'b', '/', 0, 1, 'h', 'i'}                    // QoS 1 PUBLISH b/ id 1
	puback := []byte{0x40, 2, 0, 7}                                            // PUBACK 7
	long0 := append([]byte{0x30, 0x80, 0x01, 0, 1, 'c'}, make([]byte, 125)...) // 128-byte remaining length
	join := func(ps ...[]byte) []byte { return bytes.Join(ps, nil) }
	for _, c := range []struct {
		name    string
		in      []byte
		want    []byte
		dropped int64
	}{
		{"one QoS 0", pub0, nil, 1},
		{"one QoS 1", pub1, pub1, 0},
		{"mixed", join(puback, pub0, pub1, long0, puback), join(puback, pub1, puback), 2},
		{"not whole packets: kept", pub0[:5], pub0[:5], 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			server := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
			f := NewFlowControl(server, DefaultLimits(), slog.New(slog.DiscardHandler))
			got := (&flowConn{flow: f}).withoutQoS0(c.in)
			if !bytes.Equal(got, c.want) {
				t.Errorf("kept % x, want % x", got, c.want)
			}
			if n := server.Info.MessagesDropped; n != c.dropped {
				t.Errorf("counted %d dropped, want %d", n, c.dropped)
			}
		})
	}
}
