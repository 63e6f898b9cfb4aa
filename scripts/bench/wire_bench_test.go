package main

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// BenchmarkWire measures the generator's hot path for one QoS 1 message: the publisher writes
// the PUBLISH, the subscriber reads and parses it and writes its PUBACK.
func BenchmarkWire(b *testing.B) {
	payload := make([]byte, 64)
	var wire bytes.Buffer
	pub := &mqttConn{w: bufio.NewWriterSize(&wire, 64<<10)}
	sub := &mqttConn{r: bufio.NewReaderSize(&wire, 64<<10), w: bufio.NewWriterSize(io.Discard, 64<<10)}
	b.ReportAllocs()
	for i := range b.N {
		fillHeader(payload, 1, uint64(i))
		if err := pub.writePublish("bench/x", 1, packetID(uint64(i)), payload); err != nil {
			b.Fatal(err)
		}
		if err := pub.w.Flush(); err != nil {
			b.Fatal(err)
		}
		_, flags, body, err := sub.readPacket()
		if err != nil {
			b.Fatal(err)
		}
		_, id, _, err := parsePublish(flags, body)
		if err != nil {
			b.Fatal(err)
		}
		sub.writeAck(pkPuback, id)
	}
}
