package mochifix

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

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

func (h *Hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.PacketID == 0 || !clientChoosesID(pk) {
		return pk, nil
	}
	passID(cl, pk.PacketID) // no message queued to the client from now on takes the id
	h.setAside(cl, pk.PacketID)
	return pk, nil
}

// setAside moves the broker's message with the client's packet id out of the session until
// the client's packet is processed.
func (h *Hook) setAside(cl *mqtt.Client, id uint16) {
	if h.hasStashed(cl) {
		return // one at a time: a second message with the id cannot be put back
	}
	if out, ok := cl.State.Inflight.Get(id); ok && brokerChoseID(out) {
		cl.State.Inflight.Delete(id)
		h.stashed.Store(cl, out)
		h.nStashed.Add(1)
	}
}

// OnSubscribe, right before mochi checks the SUBSCRIBE's id, sets aside a message that took
// the id after OnPacketRead: a publisher can get the id from mochi's counter just before
// passID moves it and store the message just after (SUBACK 0x91 on a resubscribe).
func (h *Hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	h.setAside(cl, pk.PacketID)
	return pk
}

// passID moves the client's packet-id counter past id, so that no message queued to the
// client while the client's packet is processed gets id: mochi would refuse the SUBSCRIBE
// (0x91), or take a QoS 1 PUBLISH's id for the broker's message and drop that message, and a
// message set aside here would be lost. On a resumed session the counter starts again at 0 and
// the client's first SUBSCRIBE is id 1, so this is not rare.
//
// mochi's counter can only be moved one free id at a time (NextPacketID, under the client's
// lock; it skips the ids in use in one call). So the walk stops when id is behind the counter
// (half the id space or less: the counter wraps from 65535 to 1), and after passSteps calls:
// whatever id the client sends costs a bounded number of calls. A client that sent 65535 made
// every packet walk the whole id space before: the counter never goes past 65535.
func passID(cl *mqtt.Client, id uint16) {
	for range passSteps {
		next, err := cl.NextPacketID()
		if err != nil || !ahead(uint16(next), id) {
			return
		}
	}
}

// passSteps bounds passID's walk. An id further away than that many free ids is reached only
// if as many messages are queued to the client while one of its packets is processed; the
// walk goes on with the client's next packets.
const passSteps = 64

// ahead reports whether mochi's counter at next reaches id within half the id space. The
// ids run 1…65535, then 1 again: 65535 counts as 0.
func ahead(next, id uint16) bool {
	d := (int(id%65535) - int(next%65535) + 65535) % 65535
	return d > 0 && d < 1<<15
}

func (h *Hook) hasStashed(cl *mqtt.Client) bool {
	if h.nStashed.Load() == 0 {
		return false
	}
	_, ok := h.stashed.Load(cl)
	return ok
}

func (h *Hook) restore(cl *mqtt.Client) {
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
	if out.FixedHeader.Type == packets.Publish {
		// A take-over may have copied the session while the message was set aside: as one queued
		// to the old session then, it goes to the new connection. (A PUBREL set aside is not.)
		h.OnQosPublish(cl, out, out.Created, 0)
	}
}
