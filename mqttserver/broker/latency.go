package broker

import (
	"strconv"
	"sync/atomic"
	"time"
)

// latencySample: 1 PUBLISH received in latencySample is timed, at each of its writes to a
// subscriber; the others cost no clock read.
const latencySample = 64

// latencyBuckets are the delivery latency histogram's upper bounds, in seconds.
var latencyBuckets = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// stampSlots is how many timed messages are remembered at once: a slot is taken again
// stampSlots × latencySample messages later.
const stampSlots = 64

// latency times messages from their PUBLISH read to their writes to the subscribers. The
// receive time cannot ride in the packet mochi copies for each subscriber (its Created is in
// seconds), so a timed message carries a tag (1 to 65535) in a field mochi copies along and
// never encodes in a PUBLISH, Connect.Keepalive, and the time waits in a slot of the tag. A
// slot is one word, the tag and the microseconds since start, so that a write of a tag reused
// meanwhile is told apart, not timed against another message's time.
type latency struct {
	start   time.Time // monotonic
	nextTag atomic.Uint32
	slots   [stampSlots]atomic.Uint64 // tag << 48 | microseconds since start
	buckets [len(latencyBuckets) + 1]atomic.Int64
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
	for i < len(latencyBuckets) && float64(us) > latencyBuckets[i]*1e6 {
		i++
	}
	l.buckets[i].Add(1)
	l.sumUS.Add(us)
}

// latencyStats is the histogram for /stats: cumulative counts by upper bound, as Prometheus'.
type latencyStats struct {
	SampledOneIn int             `json:"sampled_one_in"`
	Count        int64           `json:"count"`
	SumSeconds   float64         `json:"sum_seconds"`
	Buckets      []latencyBucket `json:"buckets"`
}

type latencyBucket struct {
	LE    string `json:"le"` // seconds, or +Inf
	Count int64  `json:"count"`
}

func (l *latency) snapshot() latencyStats {
	s := latencyStats{SampledOneIn: latencySample, Buckets: make([]latencyBucket, 0, len(l.buckets))}
	var cum int64
	for i := range l.buckets {
		cum += l.buckets[i].Load()
		le := "+Inf"
		if i < len(latencyBuckets) {
			le = strconv.FormatFloat(latencyBuckets[i], 'g', -1, 64)
		}
		s.Buckets = append(s.Buckets, latencyBucket{le, cum})
	}
	// The count and sum are read after the buckets; an observation between the reads would make
	// the count exceed +Inf's: the count is the buckets' total.
	s.Count = cum
	s.SumSeconds = float64(l.sumUS.Load()) / 1e6
	return s
}
