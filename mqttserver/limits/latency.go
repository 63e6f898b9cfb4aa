package limits

import (
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// LatencySample: 1 PUBLISH received in LatencySample is timed, at each of its writes to a
// subscriber; the others cost no clock read.
const LatencySample = 64

// LatencyBuckets are the delivery latency histogram's upper bounds, in seconds.
var LatencyBuckets = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// stampSlots is how many timed messages are remembered at once: a slot is taken again
// stampSlots × LatencySample messages later.
const stampSlots = 64

// latency times messages from their PUBLISH read to their writes to the subscribers. The
// receive time cannot ride in the packet mochi copies for each subscriber (its Created is in
// seconds), so a timed message carries a tag (1 to 65535) in a field mochi copies along and
// never encodes in a PUBLISH, Connect.Keepalive, and the time waits in a slot of the tag. A
// slot is one word, the tag and the microseconds since start, so that a write of a tag reused
// meanwhile is told apart, not timed against another message's time. Nothing else reads a
// PUBLISH's Connect.Keepalive, and the data file does not keep it (mochi's storage.Message has
// no such field): a message loaded after a restart carries no tag.
//
// The tag is stamped in limitsHook.OnPacketRead. limitsHook.OnPacketEncode sees a tagged copy
// before the hooks after it, and the store waits there for its commit with -data, or holds the
// copy back: the time is taken at the write itself. OnPacketEncode tells the connection which
// copy to expect (topic, QoS, packet id), and flowConn.Write observes it when it comes, unless
// it drops it. A copy held back leaves its expectation until it comes again, or until the next
// tagged copy to that client takes its place (then one timing is lost).
type latency struct {
	start   time.Time // monotonic
	nextTag atomic.Uint32
	slots   [stampSlots]atomic.Uint64 // tag << 48 | microseconds since start
	buckets [len(LatencyBuckets) + 1]atomic.Int64
	sumUS   atomic.Int64 // microseconds
}

// stamp remembers now and returns the tag for the message.
func (l *latency) stamp() uint16 {
	tag := uint16(l.nextTag.Add(1)%65535 + 1)
	l.slots[tag%stampSlots].Store(uint64(tag)<<48 | uint64(time.Since(l.start).Microseconds())&(1<<48-1))
	return tag
}

// observe records the time since the stamp of tag, unless its slot has been taken again.
func (l *latency) observe(tag uint16) {
	v := l.slots[tag%stampSlots].Load()
	if uint16(v>>48) != tag {
		return
	}
	us := time.Since(l.start).Microseconds() - int64(v&(1<<48-1))
	if us < 0 {
		return
	}
	i := 0
	for i < len(LatencyBuckets) && float64(us) > LatencyBuckets[i]*1e6 {
		i++
	}
	l.buckets[i].Add(1)
	l.sumUS.Add(us)
}

// Latency is the delivery latency histogram: the observations in each bucket of
// LatencyBuckets (not cumulative), the last past them, and their sum in microseconds.
func (t *Traffic) Latency() (buckets [len(LatencyBuckets) + 1]int64, sumUS int64) {
	for i := range t.latency.buckets {
		buckets[i] = t.latency.buckets[i].Load()
	}
	return buckets, t.latency.sumUS.Load()
}

// tagged is the timed copy a connection expects to write (under flowConn.mu).
type tagged struct {
	tag   uint16 // 0: none expected
	qos   byte
	id    uint16 // QoS 1 and 2
	topic string
}

// expect tells the connection of cl the timed copy pk it is about to be given: called from
// limitsHook.OnPacketEncode for a PUBLISH that carries a tag. A retained message sent to a new
// subscription was received long before: not timed.
func expect(cl *mqtt.Client, pk *packets.Packet) {
	c, ok := cl.Net.Conn.(*flowConn)
	if !ok || pk.FixedHeader.Retain {
		return
	}
	c.mu.Lock()
	c.tagged = tagged{tag: pk.Connect.Keepalive, qos: pk.FixedHeader.Qos, id: pk.PacketID, topic: pk.TopicName}
	c.mu.Unlock()
}

// isTagged reports whether p, a whole packet, is the copy c expects (under c.mu, with a
// tag expected).
func (c *flowConn) isTagged(p []byte) bool {
	size, h := fixedHeader(p)
	if size <= 0 || size > len(p) || p[0]>>4 != packets.Publish || p[0]>>1&3 != c.tagged.qos || h+2 > size {
		return false
	}
	l := int(p[h])<<8 | int(p[h+1])
	topic := h + 2
	if topic+l > size || string(p[topic:topic+l]) != c.tagged.topic {
		return false
	}
	if c.tagged.qos == 0 {
		return true
	}
	id := topic + l
	return id+2 <= size && uint16(p[id])<<8|uint16(p[id+1]) == c.tagged.id
}
