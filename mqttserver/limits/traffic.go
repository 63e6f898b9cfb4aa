package limits

import (
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Why here: mochi counts messages and bytes only in total. A hook of its own cost every packet
// a Provides call per event and, for OnPacketRead and OnPacketSent, a copy of the ~800-byte
// packets.Packet (about 5% of the broker's CPU in a QoS 0 flood). The counts are taken where
// the broker already looks at every packet: limitsHook.OnPacketRead counts the PUBLISH
// packets read (by QoS, before any limit refuses one: mochi counts those as received too; the
// hooks before it refuse only a PUBLISH whose connection then ends, mochifix.PacketIDs's at a
// full id space), OnPublishDropped the messages mochi drops at a full write queue; the connection layer counts
// the PUBLISH packets it writes (by QoS, a QoS 0 copy it drops is not written) and the
// CONNACKs that refuse, from their bytes (flowConn.Write). Fixed arrays of atomic counters,
// no map, no allocation, and a clock read only for the messages timed.
//
// Not counted: a PUBLISH mochi's inline client publishes (no packet is read: mochi's
// InjectPacket calls no OnPacketRead) and a message to an inline subscription (no packet is
// written: mochi calls its handler). A broker without the connection layer (a test setting,
// broker's blockingWrites) counts nothing written and times nothing.

// Traffic is the counts by QoS, refusals by reason code, write-queue drops and the delivery
// latency, since the start of the process.
type Traffic struct {
	received, sent [3]qosCount // by QoS
	refused        [256]atomic.Int64
	writeQueueFull atomic.Int64
	latency        latency
}

// qosCount is one QoS's messages and bytes, a cache line of its own: publishers add to received
// on their goroutines, subscribers' writers to sent on theirs.
type qosCount struct {
	messages, bytes atomic.Int64
	_               [48]byte
}

func NewTraffic() *Traffic {
	t := &Traffic{}
	t.latency.start = time.Now()
	return t
}

// Received is the PUBLISH packets read from clients and their bytes, by QoS.
func (t *Traffic) Received() (messages, bytes [3]int64) { return snapshot(&t.received) }

// Sent is the PUBLISH packets written to clients and their bytes, by QoS.
func (t *Traffic) Sent() (messages, bytes [3]int64) { return snapshot(&t.sent) }

func snapshot(c *[3]qosCount) (messages, bytes [3]int64) {
	for q := range c {
		messages[q], bytes[q] = c[q].messages.Load(), c[q].bytes.Load()
	}
	return messages, bytes
}

// Refused is the CONNACKs written with reason code, 1 to 255 (0 accepts).
func (t *Traffic) Refused(code byte) int64 { return t.refused[code].Load() }

// WriteQueueFull is the messages mochi dropped for a client whose write queue was full
// (-max-pending-writes).
func (t *Traffic) WriteQueueFull() int64 { return t.writeQueueFull.Load() }

// read counts a PUBLISH read from a client and returns the tag that times it, or 0.
func (t *Traffic) read(pk *packets.Packet) uint16 {
	if pk.FixedHeader.Qos > 2 {
		return 0
	}
	c := &t.received[pk.FixedHeader.Qos]
	n := c.messages.Add(1)
	c.bytes.Add(int64(packetSize(pk.FixedHeader.Remaining)))
	if n%LatencySample == 0 {
		return t.latency.stamp()
	}
	return 0
}

// written counts the PUBLISH packets and the refusing CONNACKs in p, whole packets as mochi
// writes them (one a Write: mochifix.WriteBufferSize).
func (t *Traffic) written(p []byte) {
	for len(p) > 0 {
		size, h := fixedHeader(p)
		if size <= 0 || size > len(p) {
			return
		}
		switch p[0] >> 4 {
		case packets.Publish:
			if q := p[0] >> 1 & 3; q < 3 {
				t.sent[q].messages.Add(1)
				t.sent[q].bytes.Add(int64(size))
			}
		case packets.Connack: // session present flags, then the reason code
			if h+1 < size && p[h+1] != 0 {
				t.refused[p[h+1]].Add(1)
			}
		}
		p = p[size:]
	}
}

// fixedHeader reads the fixed header at the start of b: the packet's whole size, and where
// its variable header begins. size is 0 when b does not start with a complete fixed header.
func fixedHeader(b []byte) (size, h int) {
	remaining, shift := 0, 0
	for i := 1; i < len(b) && i <= 4; i++ {
		remaining |= int(b[i]&0x7f) << shift
		shift += 7
		if b[i]&0x80 == 0 {
			return i + 1 + remaining, i + 1
		}
	}
	return 0, 0
}
