package load

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// BenchmarkWire measures the generator's hot path for one QoS 1 message: the publisher writes
// the PUBLISH, the subscriber reads and parses it and writes its PUBACK.
func BenchmarkWire(b *testing.B) {
	payload := make([]byte, 64)
	var wire bytes.Buffer
	pub := newMQTTConn(nil, nil, bufio.NewWriterSize(&wire, 64<<10))
	sub := newMQTTConn(nil, bufio.NewReaderSize(&wire, 64<<10), bufio.NewWriterSize(io.Discard, 64<<10))
	head := newPublishHead("bench/x", 1, len(payload))
	var pk packets.Packet
	b.ReportAllocs()
	for i := range b.N {
		fillHeader(payload, 1, uint64(i))
		if err := pub.writePublish(head, packetID(uint64(i)), payload); err != nil {
			b.Fatal(err)
		}
		if err := pub.w.Flush(); err != nil {
			b.Fatal(err)
		}
		fh, body, err := sub.in.Next()
		if err != nil {
			b.Fatal(err)
		}
		pk.FixedHeader, pk.PacketID = fh, 0
		if err := pk.PublishDecode(body); err != nil {
			b.Fatal(err)
		}
		sub.writeAck(packets.Puback, pk.PacketID)
	}
}
