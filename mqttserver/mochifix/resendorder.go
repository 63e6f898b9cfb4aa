package mochifix

import (
	"slices"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// renumber puts a resumed session's queue in order before mochi resends it ordered by
// uint16(Created): it rewrites Created so that this order is the order in which the messages
// were queued. The broker numbers them with consecutive packet ids, so their queue order is the
// circular order of the ids, starting after the widest gap. The run ends a second before the
// newest, so that a message queued meanwhile (stamped now) comes after it, not tied with its
// last message. Created moves back by at most a second for each message queued after it, which
// only makes expiry a little earlier.
//
// It runs at the CONNACK, on the copy mochi made of the old session, which nothing changes
// then (the connection reads nothing yet). On the old session it would race the old
// connection's acknowledgements (TestTakeoverLeavesOldSessionAlone).
func renumber(in *mqtt.Inflight) {
	queued := QueueOrder(in.GetAll(false))
	if len(queued) == 0 {
		return
	}
	newest := int64(0)
	for _, m := range queued {
		newest = max(newest, m.Created)
	}
	first := newest - int64(len(queued))
	if int64(uint16(first))+int64(len(queued)) > 1<<16 {
		first -= int64(uint16(first)) + int64(len(queued)) - 1<<16 // do not wrap uint16 in the run
	}
	for i, m := range queued {
		m.Created = first + int64(i)
		in.Set(m)
	}
}

// QueueOrder sorts in-flight messages into the order the broker queued them: by packet id,
// circularly, starting after the widest gap between consecutive ids.
func QueueOrder(msgs []packets.Packet) []packets.Packet {
	sorted := slices.Clone(msgs)
	slices.SortFunc(sorted, func(a, b packets.Packet) int { return int(a.PacketID) - int(b.PacketID) })
	start, widest := 0, -1
	for i := range sorted {
		prev := sorted[(i+len(sorted)-1)%len(sorted)].PacketID
		gap := (int(sorted[i].PacketID) - int(prev) + 1<<16) % (1 << 16)
		if gap > widest {
			start, widest = i, gap
		}
	}
	return append(sorted[start:], sorted[:start]...)
}
