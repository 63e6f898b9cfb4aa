package broker

import (
	"bytes"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// packetIDHook mends a flaw of mochi v2.7.9: it keeps the packet identifiers a client chose
// (SUBSCRIBE, UNSUBSCRIBE, QoS 1/2 PUBLISH) and those the broker chose for messages to the
// client in one map, though MQTT gives each side its own. So a client that comes back to a
// persistent session with queued messages and subscribes with packet id 1 — as every client
// does — gets "subscription refused" while message 1 is in flight; its UNSUBSCRIBE is silently
// ignored; and its own QoS 1 PUBLISH with id 1 deletes the broker's message 1 from the session,
// which is then never resent. The hook moves a broker-side message out of the way while the
// client's packet with the same id is processed, and puts it back right after.
//
// It also mends the order in which mochi resends a resumed session's queued messages: it sorts
// them by the low 16 bits of their creation second, unstably, so messages queued within one
// second come back shuffled, though MQTT promises their order.
//
// And it mends a race of session take-over: mochi copies the old session's in-flight messages
// to the new connection, then clears the old session; a QoS 1/2 message queued to the old one
// in between (or before the new connection is registered) was lost. The hook notes every
// message queued to a session being taken over and hands the missing ones to the new
// connection right after mochi has resent the session.
type packetIDHook struct {
	mqtt.HookBase
	server    *mqtt.Server
	log       *slog.Logger
	stashed   sync.Map // *mqtt.Client → packets.Packet, between read and processed, on one goroutine
	takeovers sync.Map // *mqtt.Client (old session) → *queued, until the new one is established
	newcomers sync.Map // *mqtt.Client (new connection) → *queued, the same list
	// Counts of the entries above, so that the hooks called for every packet and every message
	// (OnPacketProcessed, OnQosPublish) skip the map when nothing is pending, as is usual.
	nStashed, nTakeovers atomic.Int32
}

// queued are the messages queued to a session while it is being taken over.
type queued struct {
	old  *mqtt.Client // the session being taken over
	mu   sync.Mutex
	msgs []packets.Packet
}

func (h *packetIDHook) ID() string { return "mochi-fixes" }

func (h *packetIDHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnPacketRead, mqtt.OnPacketProcessed, mqtt.OnDisconnect,
		mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnQosPublish}, []byte{b})
}

// clientChoosesID reports whether pk carries an identifier the client chose.
func clientChoosesID(pk packets.Packet) bool {
	switch pk.FixedHeader.Type {
	case packets.Subscribe, packets.Unsubscribe:
		return true
	case packets.Publish:
		return pk.FixedHeader.Qos == 1 // QoS 2 keeps its PUBREC under the id until PUBREL: not mended
	}
	return false
}

// brokerChoseID reports whether an in-flight entry is the broker's own message to the client:
// a PUBLISH awaiting PUBACK/PUBREC, or a PUBREL awaiting PUBCOMP.
func brokerChoseID(pk packets.Packet) bool {
	return pk.FixedHeader.Type == packets.Publish || pk.FixedHeader.Type == packets.Pubrel
}

func (h *packetIDHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.PacketID == 0 || !clientChoosesID(pk) {
		return pk, nil
	}
	if out, ok := cl.State.Inflight.Get(pk.PacketID); ok && brokerChoseID(out) {
		cl.State.Inflight.Delete(pk.PacketID)
		h.stashed.Store(cl, out)
		h.nStashed.Add(1)
	}
	return pk, nil
}

func (h *packetIDHook) OnPacketProcessed(cl *mqtt.Client, _ packets.Packet, _ error) { h.restore(cl) }

// OnDisconnect puts back what a packet that failed validation (and so was never processed) left.
func (h *packetIDHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.restore(cl) }

func (h *packetIDHook) restore(cl *mqtt.Client) {
	if h.nStashed.Load() == 0 {
		return
	}
	v, ok := h.stashed.LoadAndDelete(cl)
	if !ok {
		return
	}
	h.nStashed.Add(-1)
	out := v.(packets.Packet)
	if _, taken := cl.State.Inflight.Get(out.PacketID); taken {
		// Only if the broker wrapped all 65535 ids around within one packet: say so, never overwrite.
		h.log.Error("in-flight message lost to a packet id clash", "client", cl.ID, "packet_id", out.PacketID)
		return
	}
	cl.State.Inflight.Set(out)
}

// OnSessionEstablish runs before mochi takes over the old session's in-flight messages and
// resends them ordered by uint16(Created). It rewrites Created so that this order is the order
// in which the messages were queued: the broker numbers them with consecutive packet ids, so
// their queue order is the circular order of the ids, starting after the widest gap. Created
// moves back by at most one second a message, which only makes expiry a little earlier.
func (h *packetIDHook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	if pk.Connect.Clean {
		return
	}
	old, ok := h.server.Clients.Get(pk.Connect.ClientIdentifier)
	if !ok || old == cl {
		return
	}
	q := &queued{old: old}
	if _, replaced := h.takeovers.Swap(old, q); !replaced {
		h.nTakeovers.Add(1)
	}
	h.newcomers.Store(cl, q)
	if old.State.Inflight.Len() < 2 {
		return
	}
	queued := QueueOrder(old.State.Inflight.GetAll(false))
	newest := int64(0)
	for _, m := range queued {
		newest = max(newest, m.Created)
	}
	first := newest - int64(len(queued)-1)
	if int64(uint16(first))+int64(len(queued)) > 1<<16 {
		first -= int64(uint16(first)) + int64(len(queued)) - 1<<16 // do not wrap uint16 in the run
	}
	for i, m := range queued {
		m.Created = first + int64(i)
		old.State.Inflight.Set(m)
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

// OnQosPublish notes a message queued to a session that is being taken over.
func (h *packetIDHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, resends int) {
	if resends > 0 || pk.FixedHeader.Type != packets.Publish || h.nTakeovers.Load() == 0 {
		return
	}
	if v, ok := h.takeovers.Load(cl); ok {
		q := v.(*queued)
		q.mu.Lock()
		q.msgs = append(q.msgs, pk.Copy(true))
		q.mu.Unlock()
	}
}

// OnSessionEstablished runs once mochi has copied the old session to the new connection,
// registered it and resent what it copied: what the copy missed is sent now, under new ids.
func (h *packetIDHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	v, ok := h.newcomers.LoadAndDelete(cl)
	if !ok {
		return
	}
	q := v.(*queued)
	if h.takeovers.CompareAndDelete(q.old, q) { // not a later take-over's entry for the same session
		h.nTakeovers.Add(-1)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range q.msgs {
		if have, ok := cl.State.Inflight.Get(m.PacketID); ok && have.TopicName == m.TopicName && bytes.Equal(have.Payload, m.Payload) {
			continue // copied with the session
		}
		id, err := cl.NextPacketID()
		if err != nil {
			h.log.Error("message queued during a session take-over lost: no packet id left", "client", cl.ID, "topic", m.TopicName)
			continue
		}
		m.PacketID = uint16(id)
		if cl.State.Inflight.Set(m) {
			atomic.AddInt64(&h.server.Info.Inflight, 1)
		}
		h.OnQosPublish(cl, m, 0, 0) // this connection may be being taken over already
		_ = cl.WritePacket(m)       // a failed write leaves it in flight: resent at the next connection
	}
}
